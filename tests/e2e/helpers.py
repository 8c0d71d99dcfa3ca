"""Helpers the browser tests share."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from django.db import connections


def orm(fn):
    """Run ``fn`` (ORM reads, a service call) in a worker thread and close its
    connection there: the test thread hosts Playwright's event loop, where a
    connection would be context-local, never closed, and keep the test
    database from being dropped (and ``async_to_sync`` publishing would fail)."""

    def run():
        try:
            return fn()
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result()


def signed_in(chromium, base_url: str, username: str, *, to: str, quiet_socket: str, clock: bool = False):
    """A fresh 1440×900 Chinese page signed in as ``username`` through the
    login form (the factories' password) and landed on ``to``; the socket at
    ``quiet_socket`` (a path such as ``/ws/console/``) is routed to an open
    one that says nothing. ``page.errors`` collects the page's script errors,
    ``page.requests`` every URL it asks for; with ``clock`` the page's time is
    Playwright's, installed before the first page loads. Close ``page.context``."""
    import re

    from accounts.tests.factories import PASSWORD

    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.errors, page.requests = [], []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("request", lambda request: page.requests.append(request.url))
    if clock:
        page.clock.install()
    page.route_web_socket(re.compile(rf".*{re.escape(quiet_socket)}$"), lambda ws: None)
    page.goto(f"{base_url}/accounts/login/?next={to}")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"{re.escape(to)}$"))
    return page
