"""The embedded default, booted for real: SQLite file, in-memory channel
layer, demo data loaded twice (idempotent), uvicorn (as scripts/dev) serving the console and
the API, the periodic jobs running once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.embedded


def _ticket_count(db) -> int:
    import sqlite3

    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from tickets_ticket").fetchone()[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    db = tmp_path_factory.mktemp("embedded") / "db.sqlite3"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SQLITE_PATH=str(db), DEBUG="1")
    manage = [sys.executable, "manage.py"]
    counts = []
    for args in (["migrate", "--noinput", "-v0"], ["seed_demo"], ["seed_demo"], ["run_periodic", "--once"]):
        result = subprocess.run(manage + args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr
        if args[0] == "seed_demo":
            counts.append(_ticket_count(db))
    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "uvicorn"), "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
         "cs_portal.asgi:application"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base}/accounts/login/", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield base, db, counts
    server.terminate()
    server.wait(timeout=10)


def test_demo_data_is_idempotent_and_complete(embedded):
    import sqlite3

    _, db, counts = embedded
    with sqlite3.connect(db) as conn:
        users = dict(conn.execute("select username, 1 from accounts_user").fetchall())
        holds = conn.execute("select count(*) from merchants_fundhold where status = 'held'").fetchone()[0]
        statuses = {row[0] for row in conn.execute("select distinct status from tickets_ticket")}
    expected = {f"agent{i}" for i in range(1, 6)} | {"lead1", "head1"} | {f"merchant{i}" for i in range(1, 4)} | {
        f"buyer{i}" for i in range(1, 21)}
    assert expected <= set(users)
    assert counts[0] >= 40 and counts[0] == counts[1]  # a second seed_demo added nothing
    assert holds >= 3
    assert {"open", "assigned", "waiting_buyer", "waiting_merchant", "resolved", "closed"} <= statuses


def test_api_and_console_answer(embedded):
    base, db, counts = embedded
    token = httpx.post(f"{base}/api/v1/auth/token/", json={"username": "agent1", "password": "demo12345"}).json()["token"]
    headers = {"Authorization": f"Token {token}"}
    tickets = httpx.get(f"{base}/api/v1/tickets/", headers=headers)
    assert tickets.status_code == 200 and tickets.json()["count"] == counts[0]

    buyer = httpx.post(f"{base}/api/v1/auth/token/", json={"username": "buyer1", "password": "demo12345"}).json()["token"]
    orders = httpx.get(f"{base}/api/v1/orders/", headers={"Authorization": f"Token {buyer}"}).json()["results"]
    created = httpx.post(
        f"{base}/api/v1/tickets/", headers={"Authorization": f"Token {buyer}"},
        json={"category": "logistics_delay", "subject": "冒烟测试", "body": "快递没动", "order_id": orders[0]["id"]},
    )
    assert created.status_code == 201 and created.json()["status"] in ("open", "assigned")

    with httpx.Client(base_url=base) as browser:
        login = browser.get("/accounts/login/")
        assert login.status_code == 200
        response = browser.post("/accounts/login/", data={
            "username": "agent1", "password": "demo12345", "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
            headers={"Referer": f"{base}/accounts/login/"})
        assert response.status_code == 302
        console = browser.get("/console/")
        assert console.status_code == 200
        assert browser.get("/static/vendor/htmx-2.0.11.min.js").status_code == 200
        assert browser.get("/api/docs/").status_code == 200


def test_buyer_and_agent_chat_through_real_websockets(embedded):
    """Headless Chromium against the real server: a buyer starts a chat, the
    agent answers through the API, the answer arrives over the socket; the
    buyer's page is reloaded in the middle and no message is lost or doubled."""
    import re
    import shutil

    if not shutil.which("/usr/bin/chromium"):  # pragma: no cover
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    base, _, _ = embedded
    agent = httpx.post(f"{base}/api/v1/auth/token/", json={"username": "agent1", "password": "demo12345"}).json()["token"]
    headers = {"Authorization": f"Token {agent}"}
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN").new_page()
        page.set_default_timeout(15_000)
        page.goto(f"{base}/accounts/login/?next=/chat/")
        page.fill("#id_username", "buyer2")
        page.fill("#id_password", "demo12345")
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/chat/$"))
        page.select_option("select[name=order_id]", index=1)
        page.fill("textarea[name=body]", "快递三天没动了，帮我看看")
        page.click(".chat-start button[type=submit]")
        page.wait_for_url(re.compile(r"/chat/\d+/$"))
        ticket_id = int(re.search(r"/chat/(\d+)/", page.url).group(1))
        page.locator('#chat-status[data-state="open"]').wait_for()

        # the agent answers through the API: the buyer sees it without a reload
        answer = httpx.post(f"{base}/api/v1/tickets/{ticket_id}/messages/", headers=headers, json={"body": "您好，我来帮您查"})
        assert answer.status_code == 201
        page.locator(".bubble", has_text="您好，我来帮您查").wait_for()

        # the buyer answers over the socket: stored once, acknowledged
        page.fill("#chat-input", "谢谢")
        page.click("#chat-send button[type=submit]")
        page.locator('.bubble[data-seq]', has_text="谢谢").wait_for()

        # an agent in a second browser opens the ticket in the console: sees the buyer
        # there, the buyer typing and how far the buyer has read, and answers
        console = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN").new_page()
        console.set_default_timeout(15_000)
        console.goto(f"{base}/accounts/login/?next=/console/tickets/{ticket_id}/")
        console.fill("#id_username", "agent1")
        console.fill("#id_password", "demo12345")
        console.click("button[type=submit]")
        console.wait_for_url(re.compile(rf"/console/tickets/{ticket_id}/$"))
        console.locator("#viewers .viewer-buyer").wait_for()
        page.fill("#chat-input", "还有一个问题")
        console.locator("#typing-indicator:not([hidden])").wait_for()
        console.locator("#conversation .read-tag.read-buyer").wait_for()
        console.fill("#reply-body", "收到，我在处理")
        console.click("#reply-form button[type=submit]")
        held = console.locator("[data-confirm-held]")
        console.locator("#conversation .msg", has_text="收到，我在处理").or_(held).first.wait_for()
        if held.count():  # the chat was routed to another agent: the console asks first
            held.click()
        page.locator(".bubble", has_text="收到，我在处理").wait_for()
        console.screenshot(path=str(ROOT / "docs" / "screenshots" / "console-chat.png"))
        page.fill("#chat-input", "")

        # reload in the middle while the agent keeps writing
        page.reload(wait_until="commit")
        httpx.post(f"{base}/api/v1/tickets/{ticket_id}/messages/", headers=headers, json={"body": "已联系快递"})
        page.locator('#chat-status[data-state="open"]').wait_for()
        page.locator(".bubble", has_text="已联系快递").wait_for()
        seqs = page.locator(".bubble[data-seq]").evaluate_all("els => els.map(e => Number(e.dataset.seq))")
        stored = httpx.get(f"{base}/api/v1/tickets/{ticket_id}/messages/", headers=headers).json()["results"]
        assert sorted(seqs) == [m["seq"] for m in stored if not m["internal"]]  # each once, none missing
        assert len(seqs) == len(set(seqs))
        page.screenshot(path=str(ROOT / "docs" / "screenshots" / "buyer-chat.png"))
        browser.close()
