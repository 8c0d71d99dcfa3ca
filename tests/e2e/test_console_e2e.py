"""End to end in headless Chromium: an agent signs in, opens a ticket from the
queue, takes it, answers with a quick reply picked in the picker, resolves it.

The console socket is mocked with Playwright's websocket routing (the live
server is plain WSGI), which also lets the test push the frames the server
would send and check what the page does with them. The screenshots for the
README are taken on the way.
"""

from __future__ import annotations

import json
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from accounts.models import User
from tickets import services
from tickets.models import Message, Ticket

from tests.e2e.helpers import orm

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, reset_sequences=True), pytest.mark.timeout(180)]

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"




def _pick_ticket() -> Ticket:
    """An open Chinese ticket whose order is shipped, so the tracking quick reply fills completely."""
    return (
        Ticket.objects.filter(status="open", language="zh-hans", order__shipment__eta__isnull=False)
        .select_related("order__shipment", "buyer")
        .order_by("due_at", "created_at", "id")
        .first()
    )


@pytest.fixture
def demo_data(transactional_db):
    """The demo data of ``seed_demo``: logins, orders, shipments, tickets."""
    call_command("seed_demo", demo_database=True, stdout=StringIO())  # tests run with DEBUG off


def test_agent_works_a_ticket_from_queue_to_resolved(live_server, demo_data, browser_page):
    ticket = orm(_pick_ticket)
    assert ticket is not None, "the demo data has an open ticket with a shipped order"
    shipment = ticket.order.shipment
    page = browser_page

    sockets = []

    def on_socket(ws):
        sockets.append(ws)
        ws.on_message(lambda message: ws.send(json.dumps({"type": "pong"})) if "ping" in str(message) else None)

    page.route_web_socket(re.compile(r".*/ws/console/$"), on_socket)

    # --- sign in ----------------------------------------------------------------
    page.goto(f"{live_server.url}/console/")
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/console/"))
    assert page.locator("html").get_attribute("lang") == "zh-hans"
    page.fill("#id_username", "agent1")
    page.fill("#id_password", "demo12345")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r"/console/$"))

    # --- the queue ----------------------------------------------------------------
    page.wait_for_selector("#live-status[data-state=open]")
    assert page.locator("#live-status").inner_text().strip() == "实时"
    header = page.locator(".topbar").inner_text()
    assert "王芳" in header and "客服" in header and "今日" in header
    rows = page.locator("#queue-table tbody tr[data-ticket-id]")
    assert rows.count() > 10
    # tickets that breached were escalated with a fresh deadline of their tier: marked, and counting down again
    breached = page.locator("#queue-table .sla-breached").first
    breached.wait_for()
    assert breached.inner_text().startswith("时效超时 · T")
    # the SLA cells count down in the browser (a row the live queue replaced meanwhile is read afresh)
    page.wait_for_function("""() => {
        const cell = document.querySelector('#queue-table .sla[data-due-at]:not(.is-overdue)');
        if (!cell) return false;
        window.__slaSeen = window.__slaSeen || new Set();
        window.__slaSeen.add(cell.textContent);
        return window.__slaSeen.size > 1;
    }""", polling=300, timeout=5000)
    # j/k move the selection
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.locator("#queue-table tr.is-selected").get_attribute("data-ticket-id") == rows.nth(0).get_attribute(
        "data-ticket-id"
    )
    page.keyboard.press("j")
    page.screenshot(path=str(SHOTS / "console-queue.png"))

    # a filter swaps the table only and pushes the URL
    page.select_option("select[name=grade]", "3")
    page.wait_for_url(re.compile(r"grade=3"))
    page.wait_for_function("() => [...document.querySelectorAll('#queue-table .grade')].every(e => e.classList.contains('grade-3'))")
    assert page.locator("#queue-filters").count() == 1
    # "/" focuses the search; the order number finds the ticket
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "q"
    page.keyboard.type(ticket.order.order_no)
    page.select_option("select[name=grade]", "")
    row = page.locator(f'#queue-table tr[data-ticket-id="{ticket.pk}"]')
    row.wait_for()

    # a change pushed over the socket refreshes the table
    with page.expect_response(lambda r: "/console/" in r.url and r.request.headers.get("hx-target") == "queue-table"):
        sockets[-1].send(json.dumps({"type": "ticket.changed", "ticket_id": ticket.pk, "status": "open"}))
    row.wait_for()

    # --- open it ----------------------------------------------------------------------
    # the page, not its GET, marks the conversation read: a POST while its chat socket is away
    with page.expect_response(lambda r: r.url.endswith(f"/console/tickets/{ticket.pk}/read/")
                              and r.request.method == "POST") as read:
        row.locator("a.row-link").click()
    page.wait_for_url(re.compile(rf"/console/tickets/{ticket.pk}/$"))
    assert read.value.ok
    assert read.value.json() == {"seq": orm(lambda: Ticket.objects.get(pk=ticket.pk).last_seq)}
    assert page.locator("#ticket-title").inner_text() == ticket.subject
    assert page.locator("[data-ticket-status]").get_attribute("data-ticket-status") == "open"
    assert shipment.tracking_no in page.locator(".order-panel").inner_text()
    buttons = set(page.locator("[data-transition]").evaluate_all("els => els.map(e => e.dataset.transition)"))
    assert buttons == {"assign", "escalate"}

    # take it
    page.click("[data-transition=assign]")
    page.wait_for_selector("[data-ticket-status=assigned]")
    assert "王芳" in page.locator(".ticket-meta").inner_text()
    assert page.locator("#timeline .tl-assign").count() == 1

    # --- reply with a quick reply picked in the picker -----------------------------------
    page.keyboard.press("q")
    page.wait_for_selector("#qr-picker:not([hidden])")
    assert page.evaluate("document.activeElement.id") == "qr-filter"
    page.keyboard.type("物流信息")
    visible = page.locator("#qr-list .qr-item:not([hidden])")
    assert visible.count() == 1
    page.keyboard.press("Enter")
    assert page.locator("#qr-picker").is_hidden()
    text = page.input_value("#reply-body")
    assert ticket.order.order_no in text and shipment.carrier in text and shipment.tracking_no in text
    assert "{" not in text
    assert page.locator("#placeholder-warning").is_hidden()
    last_seq = orm(lambda: Ticket.objects.get(pk=ticket.pk).last_seq)
    page.focus("#reply-body")
    page.keyboard.press("Control+Enter")
    page.wait_for_selector(f"#msg-{last_seq + 1}.msg-agent")
    assert page.input_value("#reply-body") == ""
    assert page.locator("#ticket-state [data-waiting-since]").count() == 0  # the header came along
    message = orm(lambda: Message.objects.select_related("author").get(ticket_id=ticket.pk, seq=last_seq + 1))
    assert (message.body, message.internal, message.author.username) == (text, False, "agent1")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / "console-ticket.png"))

    # an SLA alert arrives as a toast
    sockets[-1].send(json.dumps({"type": "sla.breached", "ticket_id": 999, "subject": "区域积压", "grade": "2"}))
    toast = page.locator("#toasts .toast-danger")
    toast.wait_for()
    assert "时效超时" in toast.inner_text() and "#999" in toast.inner_text()

    # --- resolve ----------------------------------------------------------------------
    page.click("[data-transition=resolve]")
    page.wait_for_selector("[data-ticket-status=resolved]")
    assert page.locator("[data-ticket-status]").inner_text() == "已解决"
    assert orm(lambda: Ticket.objects.get(pk=ticket.pk).status) == "resolved"
    assert set(page.locator("[data-transition]").evaluate_all("els => els.map(e => e.dataset.transition)")) == {
        "close", "reopen"
    }
    assert page.locator("#timeline .tl-resolve").count() == 1

    # meanwhile the ticket is closed elsewhere: the stale "reopen" is refused inline
    # (a 409 swapped into the page with the fresh state), never a blank page or a 500
    orm(lambda: services.transition_ticket(actor=User.objects.get(username="agent1"), ticket_id=ticket.pk, name="close"))
    page.click("[data-transition=reopen]")
    error = page.locator("#ticket-state .inline-error")
    error.wait_for()
    assert error.get_attribute("data-code") == "illegal_transition" and "操作未完成" in error.inner_text()
    assert page.locator("[data-ticket-status]").inner_text() == "已关闭"
    assert page.locator("[data-transition]").count() == 0
    assert orm(lambda: Ticket.objects.get(pk=ticket.pk).status) == "closed"
    assert page.errors == []
