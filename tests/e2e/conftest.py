"""Browser tests: headless Debian Chromium driven by Playwright's sync API.

Playwright runs its own event loop in the test thread, which makes Django's
async-safety check refuse ORM calls made from the test; they are safe here
(one thread, no loop of our own), so the check is switched off for these tests.
Never run ``playwright install``: the tests use /usr/bin/chromium.
"""

from __future__ import annotations

import os
import shutil

import pytest

os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


@pytest.fixture
def chromium():
    """Function-scoped: Playwright's loop runs in the test thread while it is
    up, so data the test prepares through the services (which publish with
    ``async_to_sync``) is made before the browser starts."""
    if not shutil.which(CHROMIUM):  # pragma: no cover
        pytest.skip("Debian's chromium is not installed (apt-get install chromium fonts-wqy-microhei)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(chromium):
    """A fresh 1440×900 page that speaks Chinese, as an agent's browser in Shanghai does."""
    context = chromium.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN", timezone_id="Asia/Shanghai")
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    yield page
    context.close()

