"""Carrier events: stored once per event id, exceptions open (or update) one
ticket and tell the buyer, bad or unknown events change nothing, and the
emergency plan's rules raise a grade-2 incident at a threshold or more (以上 includes the number)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from core.errors import DomainError
from incidents import services
from incidents.models import Incident, IncidentTicket, LogisticsEvent
from incidents.tests.factories import event, integration_user, shipment_in
from merchants.models import Shipment
from tests.concurrency import race, requires_postgres
from tickets.models import Message, Ticket


@pytest.fixture
def feed(db):
    return integration_user()


@pytest.mark.django_db
def test_an_exception_opens_one_ticket_however_often_it_is_resent(feed):
    shipment = shipment_in("浙江")
    payload = event(shipment, "lost", event_id="SF-1", location="杭州转运中心")
    first = services.ingest_logistics_event(actor=feed, payload=payload)
    again = services.ingest_logistics_event(actor=feed, payload=payload)
    assert first.created and not again.created and first.ticket_id == again.ticket_id
    assert LogisticsEvent.objects.count() == 1
    ticket = Ticket.objects.get(pk=first.ticket_id)
    assert (ticket.category, ticket.channel, ticket.buyer_id, ticket.order_id) == (
        "not_received", "api", shipment.order.buyer_id, shipment.order_id)
    # the buyer is told in the conversation, before complaining
    notice = Message.objects.get(ticket=ticket, notice="logistics_exception")
    assert shipment.tracking_no in notice.body and not notice.internal
    assert Shipment.objects.get(pk=shipment.pk).status == "exception"


@pytest.mark.django_db
def test_a_second_exception_on_the_order_updates_the_open_ticket(feed):
    shipment = shipment_in("浙江")
    first = services.ingest_logistics_event(actor=feed, payload=event(shipment, "stuck"))
    second = services.ingest_logistics_event(actor=feed, payload=event(shipment, "damaged"))
    assert first.ticket_id == second.ticket_id
    assert Message.objects.filter(ticket_id=first.ticket_id, notice="logistics_exception").count() == 2
    assert Ticket.objects.filter(order=shipment.order).count() == 1


@pytest.mark.django_db
def test_normal_events_move_the_shipment_and_open_nothing(feed):
    shipment = shipment_in("浙江")
    result = services.ingest_logistics_event(actor=feed, payload=event(shipment, "delivered"))
    assert result.created and result.ticket_id is None
    assert Shipment.objects.get(pk=shipment.pk).status == "delivered"
    assert not Ticket.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("change, code", [
    ({"tracking_no": "NOPE"}, "unknown_shipment"),
    ({"kind": "exploded"}, "invalid"),
    ({"occurred_at": "yesterday"}, "invalid"),
    ({"occurred_at": "2026-11-29T10:00:00"}, "invalid"),  # no offset
    ({"event_id": ""}, "invalid"),
    ({"location": "x" * 65}, "invalid"),
])
def test_bad_or_unknown_events_are_refused_and_leave_nothing(feed, change, code):
    shipment = shipment_in("浙江")
    with pytest.raises(DomainError) as refused:
        services.ingest_logistics_event(actor=feed, payload={**event(shipment, "lost"), **change})
    assert refused.value.code == code
    assert not LogisticsEvent.objects.exists() and not Ticket.objects.exists()
    assert Shipment.objects.get(pk=shipment.pk).status == "in_transit"


@pytest.mark.django_db
def test_only_the_feed_and_staff_post_events(buyer, merchant_user, agent):
    shipment = shipment_in("浙江")
    for outsider in (buyer, merchant_user):
        with pytest.raises(DomainError) as refused:
            services.ingest_logistics_event(actor=outsider, payload=event(shipment, "lost"))
        assert refused.value.code == "permission_denied"
    assert services.ingest_logistics_event(actor=agent, payload=event(shipment, "lost")).created


@pytest.mark.django_db
@pytest.mark.parametrize("kind, threshold", [("lost", 5), ("backlog", 20)])
def test_rules_raise_a_grade_2_incident_at_the_threshold_and_not_below_it(feed, kind, threshold):
    for _ in range(threshold - 1):
        services.ingest_logistics_event(actor=feed, payload=event(shipment_in("江苏"), kind))
    assert not Incident.objects.exists()  # one short of "threshold or more" (以上 includes the number)
    services.ingest_logistics_event(actor=feed, payload=event(shipment_in("上海"), kind))  # another region
    assert not Incident.objects.exists()
    result = services.ingest_logistics_event(actor=feed, payload=event(shipment_in("江苏"), kind))
    incident = Incident.objects.get()
    assert result.incident_id == incident.pk
    assert (incident.grade, incident.rule, incident.region, incident.owner_tier) == ("2", kind, "江苏", 2)
    assert (incident.due_at - incident.opened_at).total_seconds() == 8 * 3600
    assert IncidentTicket.objects.filter(incident=incident).count() == threshold
    assert f"{threshold}" in incident.description
    # later parcels join it; no second incident
    services.ingest_logistics_event(actor=feed, payload=event(shipment_in("江苏"), kind))
    assert Incident.objects.count() == 1
    assert IncidentTicket.objects.filter(incident=incident).count() == threshold + 1


@pytest.mark.django_db
def test_stuck_rule_needs_100_or_more_and_the_sweep_is_idempotent(feed, settings):
    settings.INCIDENT_RULE_THRESHOLDS = {**settings.INCIDENT_RULE_THRESHOLDS, "stuck": 4}
    shipments = [shipment_in("广东") for _ in range(4)]
    for shipment in shipments[:3]:
        services.ingest_logistics_event(actor=feed, payload=event(shipment, "stuck"))
    assert services.sweep_incident_rules() == []
    # old events fall out of the window
    LogisticsEvent.objects.update(occurred_at=timezone.now() - timezone.timedelta(hours=30))
    services.ingest_logistics_event(actor=feed, payload=event(shipments[3], "stuck"))
    assert not Incident.objects.exists()
    LogisticsEvent.objects.update(occurred_at=timezone.now())
    raised = services.sweep_incident_rules()
    assert len(raised) == 1 and services.sweep_incident_rules() == []
    assert Incident.objects.get().rule == "stuck"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_event_sent_in_parallel_is_stored_once():
    requires_postgres()
    feed = integration_user()
    shipment = shipment_in("浙江")
    payload = event(shipment, "lost", event_id="PAR-1")
    results, errors = race(lambda i: services.ingest_logistics_event(actor=feed, payload=payload), 6)
    assert errors == []
    assert LogisticsEvent.objects.count() == 1 and Ticket.objects.count() == 1
    assert sum(1 for r in results if r.created) == 1
