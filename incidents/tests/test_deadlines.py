"""Incidents keep their deadlines: the sweep escalates an open incident past
its deadline one tier (with a fresh period), alerts and records it, once per
period; grade-1 carrier events raise a grade-1 incident owned by the head."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from incidents import rules, services
from incidents.models import Incident, IncidentEvent, IncidentTicket, LogisticsEvent
from incidents.tests.factories import event, integration_user, shipment_in
from tickets import sla
from tickets.models import Ticket

pytestmark = pytest.mark.django_db


@pytest.fixture
def feed(db):
    return integration_user()


@pytest.fixture
def alerts(monkeypatch):
    sent = []
    monkeypatch.setattr("incidents.services.incidents.publish_on_commit",
                        lambda groups, payload: sent.append((groups, payload)))
    return sent


def test_thresholds_include_the_number():
    assert rules.reaches_threshold(parcels=5, threshold=5)
    assert not rules.reaches_threshold(parcels=4, threshold=5)
    assert rules.next_owner_tier(3) == 4 and rules.next_owner_tier(4) == 4


def test_an_incident_past_its_deadline_climbs_once_per_period(supervisor, alerts,
                                                              django_capture_on_commit_callbacks):
    incident = services.open_incident(actor=supervisor, title="华东爆仓", grade=sla.GRADE_SERIOUS, region="江苏")
    opened_due = incident.due_at
    assert incident.owner_tier == sla.TIER_TEAM_LEAD
    assert services.sweep_incident_deadlines(now=opened_due - timedelta(seconds=1)) == []

    late = opened_due + timedelta(minutes=3)
    with django_capture_on_commit_callbacks(execute=True):
        assert services.sweep_incident_deadlines(now=late) == [incident.pk]
    assert services.sweep_incident_deadlines(now=late) == []  # the same period counts once

    incident.refresh_from_db()
    assert incident.owner_tier == sla.TIER_HEAD and incident.breaches == 1 and incident.breached_at == late
    assert incident.due_at == late + sla.GRADE_DEADLINES[sla.GRADE_SERIOUS]
    passed = IncidentEvent.objects.get(incident=incident, kind="deadline_passed")
    assert passed.data["tier_before"] == 2 and passed.data["tier_after"] == 3 and passed.data["late_s"] == 180
    overdue = [(groups, p) for groups, p in alerts if p["type"] == "incident.overdue"]
    assert overdue == [(["console", "tier.3"], {
        "type": "incident.overdue", "incident_id": incident.pk, "title": "华东爆仓", "grade": "2",
        "tier_before": 2, "tier_after": 3, "due_at": opened_due.isoformat(),
        "next_due_at": incident.due_at.isoformat()})]

    # the next period passes untouched: all levels; at the top it stays and alerts each period
    for n in (2, 3):
        services.sweep_incident_deadlines(now=incident.due_at + timedelta(seconds=1))
        incident.refresh_from_db()
        assert incident.breaches == n and incident.owner_tier == sla.TIER_ALL_LEVELS
    assert IncidentEvent.objects.filter(incident=incident, kind="deadline_passed").count() == 3


def test_a_closed_incident_is_left_alone(supervisor):
    incident = services.open_incident(actor=supervisor, title="台风", grade=sla.GRADE_GENERAL)
    services.close_incident(actor=supervisor, incident_id=incident.pk, cause="台风", actions_taken="改派",
                            prevention="预案")
    assert services.sweep_incident_deadlines(now=timezone.now() + timedelta(days=2)) == []
    incident.refresh_from_db()
    assert incident.breaches == 0 and incident.owner_tier == sla.TIER_AGENT


def test_the_periodic_table_runs_the_deadline_sweep(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["incident-deadlines"]
    assert entry["task"] == "incidents.tasks.sweep_incident_deadlines"
    from incidents.tasks import sweep_incident_deadlines

    assert sweep_incident_deadlines() == 0


@pytest.mark.parametrize("kind", [k.value for k in LogisticsEvent.SEVERE])
def test_a_grade_one_carrier_event_raises_a_grade_one_incident_owned_by_the_head(feed, kind):
    result = services.ingest_logistics_event(actor=feed, payload=event(shipment_in("河南"), kind, location="郑州"))

    incident = Incident.objects.get()
    assert result.incident_id == incident.pk and result.ticket_id is not None
    assert (incident.grade, incident.rule, incident.region) == (sla.GRADE_SEVERE, kind, "河南")
    assert incident.owner_tier == sla.TIER_HEAD
    assert (incident.due_at - incident.opened_at) == timedelta(hours=12)
    assert IncidentTicket.objects.filter(incident=incident, ticket_id=result.ticket_id).exists()
    assert Ticket.objects.get(pk=result.ticket_id).status == Ticket.Status.OPEN
    # a second event of that kind in the region joins it
    again = services.ingest_logistics_event(actor=feed, payload=event(shipment_in("河南"), kind))
    assert again.incident_id == incident.pk and Incident.objects.count() == 1
    assert IncidentTicket.objects.filter(incident=incident).count() == 2


def test_grade_one_kinds_through_the_carrier_events_api(api, feed):
    shipment = shipment_in("湖南")
    response = api(feed).post("/api/v1/logistics/events/", event(shipment, "robbery"), format="json")
    assert response.status_code in (200, 201), response.json()
    incident = Incident.objects.get()
    assert incident.grade == sla.GRADE_SEVERE and incident.rule == "robbery"
    assert incident.owner_tier == sla.TIER_HEAD


def test_the_incident_page_shows_the_owner_and_the_passed_deadlines(client, supervisor):
    incident = services.open_incident(actor=supervisor, title="华南丢件潮", grade=sla.GRADE_SERIOUS, region="广东")
    services.sweep_incident_deadlines(now=incident.due_at + timedelta(minutes=1))
    client.force_login(supervisor)

    html = client.get(f"/console/incidents/{incident.pk}/").content.decode()

    assert 'data-owner-tier="3"' in html and 'data-breaches="1"' in html and "deadline_passed" in html
    api_body = client.get(f"/api/v1/incidents/{incident.pk}/").json()
    assert api_body["breaches"] == 1 and api_body["owner_tier"] == 3
