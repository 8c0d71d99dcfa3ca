"""End to end in headless Chromium: what an open console asks the server while
nobody touches it. A ticket page whose chat socket is open checks for lost
wake-ups over that socket (a ``sync`` every 20 s) instead of a page request
every 15 s, and polls over HTTP only while the socket is away; a hidden tab
asks nothing and asks at once when it is looked at again; the saved views'
counts and the portal's ticket page are polled only while the tab is visible.

Time is Playwright's clock (``page.clock``), run forward by the test; the
sockets are Playwright's websocket routes, so the test sees every frame the
page sends and answers as the server would.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.e2e.helpers import orm, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

HIDE = """(hidden) => {
    Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
    Object.defineProperty(document, "visibilityState", {value: hidden ? "hidden" : "visible", configurable: true});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


def _data():
    from accounts import roles
    from accounts.tests.factories import UserFactory
    from tickets.services import create_saved_view
    from tickets.tests.factories import ticket_in_state

    agent = UserFactory(role=roles.AGENT, username="agent_polls", display_name="王芳")
    buyer = UserFactory(role=roles.BUYER, username="buyer_polls", display_name="林晓雨")
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, subject="包裹三天没动")
    create_saved_view(actor=agent, name="我的待办", filters={"active": "true"})
    return ticket.pk, buyer.pk


def _post_as_buyer(ticket_id: int, buyer_id: int, body: str) -> int:
    from accounts.models import User
    from tickets.services import post_message

    return post_message(actor=User.objects.get(pk=buyer_id), ticket_id=ticket_id, body=body).seq


@pytest.fixture
def console(live_server, chromium, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ticket_id, buyer_id = orm(_data)
    page = signed_in(chromium, live_server.url, "agent_polls", to="/console/", quiet_socket="/ws/console/", clock=True)
    yield page, ticket_id, buyer_id
    assert page.errors == []
    page.context.close()


def _until(page, script: str, also=lambda: True, seconds: float = 10.0) -> None:
    """Wait for ``script`` to be true in the page and ``also`` here (its clock is the
    test's: Playwright's own waits poll on animation frames, which the installed clock holds)."""
    deadline = time.monotonic() + seconds
    while not (page.evaluate(script) and also()):
        assert time.monotonic() < deadline, f"never true: {script}"
        page.clock.run_for(50)
        time.sleep(0.05)


def _run(page, ms: int) -> None:
    """The page's clock forward by ``ms``, a second at a time with a moment of real
    time between, so that what a timer asked is answered before the next timer runs."""
    for _ in range(ms // 1000):
        page.clock.run_for(1000)
        time.sleep(0.02)
    page.clock.run_for(ms % 1000)


def _asked(page, fragment: str) -> int:
    """Requests whose URL holds ``fragment`` since the list was last cleared (their
    events reach the test a moment after the page sent them)."""
    time.sleep(0.3)
    page.evaluate("() => 1")
    return sum(fragment in url for url in page.requests)


def _polls_every_15_s_while_visible(page, fragment: str) -> None:
    """Two polls in 31 s while the tab is visible, none in a minute hidden, one at
    once when it is looked at again."""
    page.requests.clear()
    _run(page, 31_000)
    assert _asked(page, fragment) == 2
    page.evaluate(HIDE, True)
    page.requests.clear()
    _run(page, 61_000)
    assert _asked(page, fragment) == 0
    with page.expect_request(lambda r: fragment in r.url):
        page.evaluate(HIDE, False)


def test_a_ticket_page_checks_over_its_open_socket_and_polls_only_without_it(console, live_server):
    page, ticket_id, buyer_id = console
    chat = {"sockets": [], "frames": [], "refuse": False}

    def on_chat(ws):
        if chat["refuse"]:
            ws.close(code=1011)
            return
        chat["sockets"].append(ws)
        ws.on_message(lambda message: chat["frames"].append(json.loads(message)))

    page.route_web_socket(re.compile(rf".*/ws/tickets/{ticket_id}/chat/.*"), on_chat)
    messages = f"/console/tickets/{ticket_id}/messages/"
    page.goto(f"{live_server.url}/console/tickets/{ticket_id}/")
    _until(page, "() => window.CSW && !CSW.pollMessages()")  # the chat socket is open
    # its open fetches what was posted while it was away, once; then a minute of nothing
    _until(page, "() => true", lambda: _asked(page, messages) == 1)
    _run(page, 2_000)
    page.requests.clear()
    chat["frames"].clear()
    _run(page, 61_000)
    assert _asked(page, messages) == 0
    syncs = [frame for frame in chat["frames"] if frame.get("type") == "sync"]
    assert len(syncs) >= 3  # every 20 s, and with the minute's re-read of the ticket's head

    # the server's answer names a message the page lacks (its wake-up was lost): the page fetches it
    seq = orm(lambda: _post_as_buyer(ticket_id, buyer_id, "到了吗？还没有收到"))
    with page.expect_response(lambda r: messages in r.url and r.status == 200):
        chat["sockets"][-1].send(json.dumps({"type": "synced", "seq": seq}))
    page.locator("#conversation").get_by_text("到了吗？还没有收到").wait_for()
    # an answer with nothing new costs no request
    page.requests.clear()
    chat["sockets"][-1].send(json.dumps({"type": "synced", "seq": seq}))
    _run(page, 1_000)
    assert _asked(page, messages) == 0

    # hidden: no sync and no poll for a minute; looked at again: a sync at once
    page.evaluate(HIDE, True)
    chat["frames"].clear()
    _run(page, 61_000)
    assert _asked(page, messages) == 0
    assert not [frame for frame in chat["frames"] if frame.get("type") == "sync"]
    page.evaluate(HIDE, False)
    page.clock.run_for(100)
    assert [frame.get("type") for frame in chat["frames"]].count("sync") == 1

    # the socket away (and every reconnect refused): the page polls over HTTP, every 15 s
    chat["refuse"] = True
    chat["sockets"][-1].close(code=1011)
    _until(page, "() => CSW.pollMessages()")
    _polls_every_15_s_while_visible(page, messages)


def test_the_saved_views_counts_are_polled_only_while_the_tab_is_visible(console, live_server):
    page, _, _ = console
    page.locator("#saved-views").get_by_text("我的待办").wait_for()
    _polls_every_15_s_while_visible(page, "/console/views/")
    page.locator("#saved-views").get_by_text("我的待办").wait_for()  # the panel swapped in again, whole


def _portal_data():
    from accounts import roles
    from accounts.tests.factories import UserFactory
    from merchants.tests.factories import MerchantFactory, make_merchant_staff, paid_order
    from tickets.tests.factories import ticket_in_state

    agent = UserFactory(role=roles.AGENT)
    merchant = MerchantFactory(name="优品数码旗舰店")
    make_merchant_staff(merchant, username="merchant_polls", display_name="孙磊")
    buyer = UserFactory(role=roles.BUYER)
    order = paid_order(merchant=merchant, buyer=buyer, amount_fen=19_900)
    return ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order, subject="少发了一件").pk


def test_the_portal_ticket_page_polls_only_while_the_tab_is_visible(live_server, chromium, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    ticket_id = orm(_portal_data)
    page = signed_in(chromium, live_server.url, "merchant_polls", to=f"/merchant/tickets/{ticket_id}/",
                     quiet_socket="/ws/merchant/", clock=True)
    messages = f"/merchant/tickets/{ticket_id}/messages/"
    # no chat socket on the portal's page: the poll is its check, every 15 s while it is looked at
    _polls_every_15_s_while_visible(page, messages)
    assert page.errors == []
    page.context.close()
