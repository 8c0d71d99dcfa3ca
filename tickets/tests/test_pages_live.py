"""The live parts of the console and the portal as pages: the chat tabs with
unread counts, read receipts, the warning before replying on a ticket another
agent holds, first reply times in the queue, the portal's "needs you" count."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from merchants.tests.factories import OrderFactory
from tickets import services
from tickets.models import Message, ReadMark, Ticket
from tickets.tests.factories import open_ticket, ticket_in_state

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def console(client, agent):
    client.force_login(agent)
    return client


def _chat(buyer, agent, merchant, state="assigned"):
    order = OrderFactory(buyer=buyer, merchant=merchant)
    return ticket_in_state(state, buyer=buyer, agent=agent, order=order, channel="chat")


def _tabs(console) -> dict[int, int]:
    """ticket id → unread count, as the strip shows them."""
    html = console.get("/console/chats/tabs/", **HTMX).content.decode()
    tabs = {}
    for tab in re.findall(r'<a href="/console/tickets/\d+/" class="chat-tab[^"]*"\s+data-ticket-id="(\d+)".*?</a>', html, re.S):
        tabs[int(tab)] = 0
    for ticket_id, count in re.findall(r'data-ticket-id="(\d+)".*?<span class="badge"[^>]*>(\d+)</span>', html, re.S):
        tabs[int(ticket_id)] = int(count)
    return tabs


# --- chat tabs -----------------------------------------------------------------------


@pytest.mark.django_db
def test_chat_tabs_show_my_chats_with_unread_counts(console, agent, other_agent, buyer, merchant):
    mine = _chat(buyer, agent, merchant)
    theirs = _chat(buyer, other_agent, merchant)
    web = ticket_in_state("assigned", buyer=buyer, agent=agent, order=OrderFactory(buyer=buyer, merchant=merchant))
    resolved = _chat(buyer, agent, merchant, state="resolved")
    # the request itself is unread until the agent opens the chat
    assert _tabs(console) == {mine.pk: 1}
    services.post_message(actor=buyer, ticket_id=mine.pk, body="在吗")
    services.post_message(actor=buyer, ticket_id=mine.pk, body="快递到哪了")
    services.post_message(actor=agent, ticket_id=mine.pk, body="内部", internal=True)  # staff's own do not count
    assert _tabs(console) == {mine.pk: 3}
    # the page reads it once open: a GET alone changes nothing, the page's POST does
    assert console.get(f"/console/tickets/{mine.pk}/").status_code == 200
    assert _tabs(console) == {mine.pk: 3}
    last_seq = Ticket.objects.get(pk=mine.pk).last_seq
    assert console.post(f"/console/tickets/{mine.pk}/read/", {"seq": last_seq}).json() == {"seq": last_seq}
    assert _tabs(console) == {mine.pk: 0}
    assert ReadMark.objects.get(ticket=mine, user=agent).seq == Ticket.objects.get(pk=mine.pk).last_seq
    services.post_message(actor=buyer, ticket_id=mine.pk, body="还有一个问题")
    assert _tabs(console) == {mine.pk: 1}
    assert theirs.pk not in _tabs(console) and web.pk not in _tabs(console) and resolved.pk not in _tabs(console)


@pytest.mark.django_db
def test_opening_a_ticket_page_writes_nothing_and_its_read_post_does(console, agent, buyer, merchant,
                                                                      django_capture_on_commit_callbacks):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    ticket = _chat(buyer, agent, merchant)
    services.post_message(actor=buyer, ticket_id=ticket.pk, body="在吗")
    with CaptureQueriesContext(connection) as queries:
        html = console.get(f"/console/tickets/{ticket.pk}/").content.decode()
    assert _writes(queries) == []
    assert f'data-read-url="/console/tickets/{ticket.pk}/read/"' in html
    assert not ReadMark.objects.filter(ticket=ticket, user=agent).exists()
    # the page's POST: the mark moves forward only, never past the last message, and tells the others
    last_seq = Ticket.objects.get(pk=ticket.pk).last_seq
    with django_capture_on_commit_callbacks() as callbacks:
        assert console.post(f"/console/tickets/{ticket.pk}/read/", {"seq": 99}).json() == {"seq": last_seq}
    assert callbacks  # the read receipt goes out after commit
    assert console.post(f"/console/tickets/{ticket.pk}/read/", {"seq": 1}).json() == {"seq": last_seq}
    assert ReadMark.objects.get(ticket=ticket, user=agent).seq == last_seq


@pytest.mark.django_db
def test_the_read_post_refuses_what_it_should(client, console, agent, buyer, merchant):
    ticket = _chat(buyer, agent, merchant)
    url = f"/console/tickets/{ticket.pk}/read/"
    for bad in ("", "x", "-1", "²"):
        refused = console.post(url, {"seq": bad})
        assert refused.status_code == 400 and refused.json()["code"] == "invalid"
    assert console.get(url).status_code == 405
    assert console.post("/console/tickets/987654/read/", {"seq": 1}).status_code == 404
    client.logout()
    assert client.post(url, {"seq": 1}).status_code == 302
    client.force_login(buyer)
    assert client.post(url, {"seq": 1}).status_code == 403
    assert not ReadMark.objects.filter(ticket=ticket).exclude(user=buyer).exists()


def _writes(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")]


@pytest.mark.django_db
def test_chat_tabs_mark_the_open_chat_and_cost_the_same_for_2_or_12(console, agent, buyer, merchant, django_assert_max_num_queries):
    first = _chat(buyer, agent, merchant)
    second = _chat(buyer, agent, merchant)
    html = console.get(f"/console/chats/tabs/?current={first.pk}", **HTMX).content.decode()
    assert re.search(rf'class="chat-tab is-current[^"]*"\s+data-ticket-id="{first.pk}"', html)
    assert f'data-ticket-ids="{second.pk},{first.pk}"' in html or f'data-ticket-ids="{first.pk},{second.pk}"' in html
    with django_assert_max_num_queries(8) as two:
        console.get("/console/chats/tabs/", **HTMX)
    for _ in range(10):
        _chat(buyer, agent, merchant)
    with django_assert_max_num_queries(8) as twelve:
        console.get("/console/chats/tabs/", **HTMX)
    assert len(two.captured_queries) == len(twelve.captured_queries)
    assert len(_tabs(console)) == 12


@pytest.mark.django_db
def test_chat_tabs_are_for_staff_only(client, buyer, merchant_user):
    assert client.get("/console/chats/tabs/").status_code == 302
    for who in (buyer, merchant_user):
        client.force_login(who)
        assert client.get("/console/chats/tabs/").status_code == 403


# --- replying on a ticket someone else holds ---------------------------------------------


@pytest.mark.django_db
def test_replying_on_a_ticket_another_agent_holds_asks_first(client, agent, other_agent, buyer, order):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    client.force_login(other_agent)
    before = Message.objects.filter(ticket=ticket).count()
    refused = client.post(f"/console/tickets/{ticket.pk}/reply/", {"body": "我来回答"}, **HTMX)
    assert refused.status_code == 409 and refused["HX-Retarget"] == "#reply-error"
    html = refused.content.decode()
    assert 'data-code="held_by_other"' in html and agent.name in html and "data-confirm-held" in html
    assert Message.objects.filter(ticket=ticket).count() == before
    # a note beside the holder needs no confirmation; a confirmed reply goes out
    assert client.post(f"/console/tickets/{ticket.pk}/reply/", {"body": "备注", "internal": "on"}, **HTMX).status_code == 200
    sent = client.post(f"/console/tickets/{ticket.pk}/reply/", {"body": "我来回答", "confirm_held": "1"}, **HTMX)
    assert sent.status_code == 200
    assert list(Message.objects.filter(ticket=ticket).order_by("-seq").values_list("body", "author_id")[:2]) == [
        ("我来回答", other_agent.pk), ("备注", other_agent.pk)]


@pytest.mark.django_db
def test_the_holder_and_unassigned_tickets_need_no_confirmation(console, agent, buyer, order):
    held = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    queued = open_ticket(buyer=buyer, order=order)
    for ticket in (held, queued):
        assert console.post(f"/console/tickets/{ticket.pk}/reply/", {"body": "您好"}, **HTMX).status_code == 200


# --- read receipts and first reply ----------------------------------------------------------


@pytest.mark.django_db
def test_ticket_page_carries_how_far_the_buyer_has_read(console, agent, buyer, order):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    services.post_message(actor=agent, ticket_id=ticket.pk, body="您好")
    services.mark_read(actor=buyer, ticket_id=ticket.pk, seq=3)
    html = console.get(f"/console/tickets/{ticket.pk}/").content.decode()
    assert 'data-buyer-read-seq="3"' in html and 'data-merchant-read-seq="0"' in html
    assert f'data-chat-path="/ws/tickets/{ticket.pk}/chat/"' in html
    assert 'id="viewers"' in html and 'id="typing-indicator"' in html


@pytest.mark.django_db
def test_queue_shows_first_reply_times(console, agent, buyer, order):
    answered = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order, channel="chat")
    Ticket.objects.filter(pk=answered.pk).update(created_at=answered.created_at - timedelta(seconds=95))
    services.post_message(actor=agent, ticket_id=answered.pk, body="您好")
    waiting = open_ticket(buyer=buyer, order=order)
    html = console.get("/console/").content.decode()
    row = re.search(rf'<tr data-ticket-id="{answered.pk}".*?</tr>', html, re.S).group(0)
    assert re.search(r'class="first-reply is-slow"><span class="mono">01:3\d</span>', row)  # a chat over a minute
    row = re.search(rf'<tr data-ticket-id="{waiting.pk}".*?</tr>', html, re.S).group(0)
    assert 'class="first-reply"><span class="waiting" data-waiting-since=' in row


# --- the merchant portal's "needs you" count -------------------------------------------------


@pytest.mark.django_db
def test_portal_nav_counts_tickets_waiting_on_the_merchant(client, merchant_user, other_merchant_user, buyer, agent, order):
    ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    client.force_login(merchant_user)
    html = client.get("/merchant/tickets/").content.decode()
    assert re.search(r'<span id="portal-needs" class="nav-badge"[^>]*>2</span>', html)
    assert 'data-ws-merchant="/ws/merchant/"' in html
    client.force_login(other_merchant_user)
    html = client.get("/merchant/tickets/").content.decode()
    assert re.search(r'<span id="portal-needs" class="nav-badge"[^>]*hidden>0</span>', html)


@pytest.mark.django_db
@pytest.mark.parametrize("status, words", [("flagged", "account-banner"), ("frozen", 'data-account-status="frozen"')])
def test_ticket_page_warns_when_the_buyer_is_flagged_or_frozen(console, agent, buyer, order, status, words):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    assert "account-banner" not in console.get(f"/console/tickets/{ticket.pk}/").content.decode()
    type(buyer).objects.filter(pk=buyer.pk).update(account_status=status)
    assert words in console.get(f"/console/tickets/{ticket.pk}/").content.decode()
