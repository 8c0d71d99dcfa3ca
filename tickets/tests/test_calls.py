"""The hotline (issue #13 item 5): an agent finds the caller by phone or
order no., and logs the call on a new ``phone`` ticket or on an open one."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts import roles
from accounts.tests.factories import UserFactory
from merchants.tests.factories import OrderFactory
from tickets import selectors
from tickets.errors import InvalidInput, PermissionDenied, TicketClosed, TicketNotFound
from tickets.models import Channel, Message, PhoneCall, Ticket, TicketEvent
from tickets.services.calls import clean_phone, log_call
from tickets.tests.factories import open_ticket, ticket_in_state

pytestmark = pytest.mark.django_db


def _ago(minutes: int = 5):
    return timezone.now() - timedelta(minutes=minutes)


def test_a_call_opens_a_phone_ticket_held_by_the_agent(agent, buyer, order):
    call = log_call(actor=agent, started_at=_ago(6), duration_s=205, notes="买家来电：快递显示签收但没收到\n已联系快递",
                    caller_phone="138-0013-8000", order_id=order.pk, category="not_received")
    ticket = call.ticket
    assert ticket.channel == Channel.PHONE and ticket.category == "not_received" and ticket.order_id == order.pk
    assert ticket.buyer_id == buyer.pk and ticket.assignee_id == agent.pk and ticket.status == Ticket.Status.ASSIGNED
    assert ticket.subject == "买家来电：快递显示签收但没收到"
    assert ticket.first_response_at is not None  # the answered call answered the buyer
    assert (call.direction, call.caller_phone, call.duration_s) == ("inbound", "13800138000", 205)
    assert call.message.seq == 1 and call.message.body.startswith("买家来电") and not call.message.internal
    event = TicketEvent.objects.get(ticket=ticket, kind="phone_call")
    assert event.data["call_id"] == call.pk and event.data["duration_s"] == 205 and event.actor == agent
    assert TicketEvent.objects.get(ticket=ticket, kind="assign").data["reason"] == "phone_call"


def test_a_call_on_an_open_ticket_joins_its_conversation_as_a_note(agent, other_agent, buyer, order):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=other_agent, order=order)
    seq_before = Ticket.objects.get(pk=ticket.pk).last_seq
    call = log_call(actor=agent, started_at=_ago(3), duration_s=60, notes="买家又来电催促", ticket_id=ticket.pk,
                    direction="outbound")
    ticket.refresh_from_db()
    assert call.ticket_id == ticket.pk and ticket.assignee_id == other_agent.pk  # the holder keeps it
    note = Message.objects.get(ticket=ticket, seq=seq_before + 1)
    assert note.internal and note.body == "买家又来电催促" and note.author == agent and call.message == note
    assert ticket.last_public_seq < ticket.last_seq  # buyers never see the note
    assert [c.pk for c in selectors.calls_on(ticket=ticket)] == [call.pk]


def test_a_missed_call_is_not_a_first_response(agent, buyer):
    ticket = open_ticket(buyer=buyer)
    log_call(actor=agent, started_at=_ago(1), duration_s=0, notes="未接来电，稍后回拨", ticket_id=ticket.pk)
    assert Ticket.objects.get(pk=ticket.pk).first_response_at is None
    log_call(actor=agent, started_at=_ago(0), duration_s=90, notes="已回拨", ticket_id=ticket.pk, direction="outbound")
    assert Ticket.objects.get(pk=ticket.pk).first_response_at is not None


@pytest.mark.parametrize(("changes", "field"), [
    ({"started_at": timezone.now() + timedelta(hours=1)}, "started_at"),
    ({"started_at": timezone.now() - timedelta(days=8)}, "started_at"),
    ({"duration_s": -1}, "duration_s"),
    ({"duration_s": 4 * 3600 + 1}, "duration_s"),
    ({"duration_s": True}, "duration_s"),
    ({"notes": "   "}, "notes"),
    ({"notes": "x" * 5001}, "notes"),
    ({"direction": "sideways"}, "direction"),
    ({"caller_phone": "call me<script>"}, "caller_phone"),
    ({"category": None}, "category"),
])
def test_bad_calls_are_refused_and_write_nothing(agent, buyer, changes, field):
    kwargs = {"actor": agent, "started_at": _ago(), "duration_s": 60, "notes": "咨询", "buyer_id": buyer.pk,
              "category": "other", **changes}
    with pytest.raises(InvalidInput) as refused:
        log_call(**kwargs)
    assert refused.value.extra["field"] == field
    assert not PhoneCall.objects.exists() and not Ticket.objects.exists()


def test_refusals_who_and_where(agent, buyer, other_buyer, order):
    with pytest.raises(PermissionDenied):
        log_call(actor=buyer, started_at=_ago(), duration_s=60, notes="我自己记", buyer_id=buyer.pk, category="other")
    with pytest.raises(TicketNotFound):
        log_call(actor=agent, started_at=_ago(), duration_s=60, notes="x", ticket_id=999999)
    closed = ticket_in_state("closed", buyer=buyer, agent=agent)
    with pytest.raises(TicketClosed):
        log_call(actor=agent, started_at=_ago(), duration_s=60, notes="x", ticket_id=closed.pk)
    with pytest.raises(InvalidInput):  # a ticket and a new ticket's fields at once
        log_call(actor=agent, started_at=_ago(), duration_s=60, notes="x", ticket_id=closed.pk, category="other")
    with pytest.raises(InvalidInput):  # the order is not this buyer's
        log_call(actor=agent, started_at=_ago(), duration_s=60, notes="x", buyer_id=other_buyer.pk,
                 order_id=order.pk, category="other")
    assert not PhoneCall.objects.exists()
    assert Ticket.objects.filter(channel=Channel.PHONE).count() == 0


def test_phone_variants_match_with_or_without_the_country_code():
    assert selectors.phone_variants("13800138000") == ["+8613800138000", "13800138000", "8613800138000"]
    assert selectors.phone_variants("+8613800138000") == ["+8613800138000", "13800138000", "8613800138000"]
    assert selectors.phone_variants("02188886666") == ["02188886666"]


def test_clean_phone():
    assert clean_phone(" +86 138-0013-8000 ") == "+8613800138000"
    assert clean_phone("") == ""
    for bad in ("abc", "1", "+", "138\n0013"):
        with pytest.raises(InvalidInput):
            clean_phone(bad)


def test_callers_by_phone_and_by_order_no(agent, buyer, other_buyer, order, django_assert_max_num_queries):
    buyer.phone = "13800138000"
    buyer.save()
    other_buyer.phone = "13900139000"
    other_buyer.save()
    mine = open_ticket(buyer=buyer, order=order)
    agent.phone = "13800138000"  # staff with the same number are not callers
    agent.save()

    found = selectors.callers(phone="13800138000")
    assert [c.buyer.pk for c in found] == [buyer.pk]
    assert [t.pk for t in found[0].open_tickets] == [mine.pk] and [o.pk for o in found[0].orders] == [order.pk]
    assert [c.buyer.pk for c in selectors.callers(phone="+8613800138000")] == [buyer.pk]
    assert [c.buyer.pk for c in selectors.callers(order_no=order.order_no)] == [buyer.pk]
    assert selectors.callers(phone="10000") == [] and selectors.callers() == []

    for i in range(6):
        extra = UserFactory(role=roles.BUYER, phone="13700137000")
        OrderFactory(buyer=extra)
        open_ticket(buyer=extra, subject=f"第{i}单")
    with django_assert_max_num_queries(3):
        many = selectors.callers(phone="13700137000")
    assert len(many) == 5 and all(len(c.open_tickets) == 1 and len(c.orders) == 1 for c in many)


# --- API ---------------------------------------------------------------------------


def test_calls_api_logs_lists_and_refuses(api, agent, buyer, other_buyer, order):
    buyer.phone = "13800138000"
    buyer.save()
    client = api(agent)
    lookup = client.get("/api/v1/callers/?phone=138-0013-8000")
    assert lookup.status_code == 200
    assert lookup.json()[0]["buyer_id"] == buyer.pk and lookup.json()[0]["orders"][0]["order_no"] == order.order_no
    assert client.get("/api/v1/callers/").status_code == 400
    assert client.get("/api/v1/callers/?phone=<b>").json()["code"] == "invalid"

    created = client.post("/api/v1/calls/", {
        "started_at": _ago(4).isoformat(), "duration_s": 180, "notes": "来电咨询退货", "buyer_id": buyer.pk,
        "order_id": order.pk, "category": "order_change", "caller_phone": "13800138000",
    }, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    ticket = Ticket.objects.get(pk=body["ticket_id"])
    assert ticket.channel == "phone" and body["duration_s"] == 180 and body["agent_id"] == agent.pk

    added = client.post("/api/v1/calls/", {"started_at": _ago(1).isoformat(), "duration_s": 30, "notes": "回拨确认",
                                           "ticket_id": ticket.pk, "direction": "outbound"}, format="json")
    assert added.status_code == 201
    listed = client.get(f"/api/v1/calls/?ticket_id={ticket.pk}").json()
    assert [c["notes"] for c in listed["results"]] == ["来电咨询退货", "回拨确认"]

    for bad in ({"started_at": "yesterday", "duration_s": 1, "notes": "x", "ticket_id": ticket.pk},
                {"started_at": _ago().isoformat(), "duration_s": 99999, "notes": "x", "ticket_id": ticket.pk},
                {"started_at": _ago().isoformat(), "duration_s": 10, "notes": "x", "buyer_id": buyer.pk},
                {"started_at": _ago().isoformat(), "duration_s": 10, "notes": "x", "ticket_id": "abc"}):
        response = client.post("/api/v1/calls/", bad, format="json")
        assert response.status_code == 400 and "code" in response.json()
    assert PhoneCall.objects.count() == 2
    assert client.get("/api/v1/calls/?ticket_id=999999").status_code == 404
    assert client.get("/api/v1/calls/").status_code == 400


def test_buyers_and_merchants_cannot_use_the_hotline(api, buyer, merchant_user, agent):
    ticket = open_ticket(buyer=buyer)
    log_call(actor=agent, started_at=_ago(), duration_s=10, notes="记录", ticket_id=ticket.pk)
    for outsider in (buyer, merchant_user):
        client = api(outsider)
        assert client.get("/api/v1/callers/?phone=13800138000").status_code == 403
        assert client.get(f"/api/v1/calls/?ticket_id={ticket.pk}").status_code == 403
        refused = client.post("/api/v1/calls/", {"started_at": _ago().isoformat(), "duration_s": 1, "notes": "x",
                                                 "ticket_id": ticket.pk}, format="json")
        assert refused.status_code == 403
    assert PhoneCall.objects.count() == 1


# --- the console page ---------------------------------------------------------------


def test_the_call_page_finds_the_caller_and_opens_a_phone_ticket(client, agent, buyer, order):
    buyer.phone = "13800138000"
    buyer.save()
    client.force_login(agent)
    page = client.get("/console/calls/new/").content.decode()
    assert "data-call-form" in page
    assert "data-nav-log-call" in client.get("/console/").content.decode()

    found = client.get("/console/calls/callers/?caller_phone=13800138000", HTTP_HX_REQUEST="true").content.decode()
    assert f'value="buyer:{buyer.pk}"' in found and order.order_no in found
    assert "data-no-caller" in client.get("/console/calls/callers/?caller_phone=10000").content.decode()

    response = client.post("/console/calls/new/", {
        "target": f"buyer:{buyer.pk}", "order_id": str(order.pk), "category": "not_received", "duration": "3:25",
        "notes": "快递显示签收但买家没收到", "caller_phone": "13800138000", "direction": "inbound",
    })
    call = PhoneCall.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/console/tickets/{call.ticket_id}/"
    assert call.duration_s == 205 and call.ticket.order_id == order.pk
    ticket_page = client.get(response["Location"], HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "Phone call" in ticket_page and "03:25" in ticket_page


def test_the_call_page_adds_to_an_open_ticket_and_shows_refusals(client, agent, buyer):
    ticket = open_ticket(buyer=buyer)
    client.force_login(agent)
    page = client.get(f"/console/calls/new/?ticket={ticket.pk}").content.decode()
    assert f'value="ticket:{ticket.pk}"' in page
    assert "data-log-call" in client.get(f"/console/tickets/{ticket.pk}/").content.decode()

    for bad, field in (({"duration": "abc"}, "duration_s"), ({"duration": "1:75"}, "duration_s"),
                       ({"duration": "2", "notes": ""}, "notes"), ({"duration": "2", "started_at": "not a time"},
                                                                   "started_at")):
        form = {"target": f"ticket:{ticket.pk}", "notes": "来电", **bad}
        response = client.post(f"/console/calls/new/?ticket={ticket.pk}", form)
        assert response.status_code == 400, (bad, response.status_code)
        assert 'data-code="invalid"' in response.content.decode()
    assert client.post("/console/calls/new/", {"duration": "2", "notes": "x"}).status_code == 400
    assert client.post("/console/calls/new/", {"target": "ticket:999999", "duration": "2", "notes": "x"}).status_code == 404
    assert not PhoneCall.objects.exists()

    done = client.post(f"/console/calls/new/?ticket={ticket.pk}",
                       {"target": f"ticket:{ticket.pk}", "duration": "2", "notes": "买家来电催单"})
    assert done.status_code == 302 and PhoneCall.objects.get().duration_s == 120
    client.force_login(buyer)
    assert client.get("/console/calls/new/").status_code == 403
