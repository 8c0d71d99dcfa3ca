"""GET /api/v1/reports/carriers/: per carrier, the period's shipments and the
shares delivered on time, damaged, lost and stuck, and the CSAT of tickets
about them — each equal to what was seeded."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents import services as incidents
from incidents.tests.factories import event, integration_user
from reports.tests.factories import shipment
from tickets import services as tickets
from tickets.tests.factories import ticket_in_state

URL = "/api/v1/reports/carriers/"


def feed(shipment_, kind: str, **extra):
    incidents.ingest_logistics_event(actor=integration_user(), payload=event(shipment_, kind, **extra))


def rated(shipment_, *, agent, score: int):
    ticket = ticket_in_state("resolved", buyer=shipment_.order.buyer, agent=agent, order=shipment_.order)
    tickets.rate_ticket(actor=shipment_.order.buyer, ticket_id=ticket.pk, score=score)


@pytest.mark.django_db
def test_carrier_scorecards_equal_the_seeded_shipments(api, supervisor, agent):
    yesterday = timezone.localdate() - timedelta(days=1)
    sf = [shipment(carrier="顺丰速运") for _ in range(4)]
    feed(sf[0], "delivered")                                  # on time (ETA in two days)
    sf[1].eta = yesterday
    sf[1].save()
    feed(sf[1], "delivered")                                  # late
    feed(sf[2], "damaged")
    feed(sf[3], "lost")
    zt = [shipment(carrier="中通快递") for _ in range(2)]
    feed(zt[0], "stuck")
    feed(zt[1], "delivered")
    shipment(carrier="中通快递", shipped_at=timezone.now() - timedelta(days=30))  # outside the period
    rated(sf[0], agent=agent, score=8)
    rated(sf[1], agent=agent, score=5)
    rated(zt[0], agent=agent, score=4)

    response = api(supervisor).get(URL)
    assert response.status_code == 200, response.json()
    results = sorted(response.json()["results"], key=lambda r: r["shipments"])
    assert results == [
        {"carrier": "中通快递", "shipments": 2, "on_time_pct": 50.0, "damaged_pct": 0.0, "lost_pct": 0.0,
         "stuck_pct": 50.0, "csat_count": 1, "csat_average": 4.0},
        {"carrier": "顺丰速运", "shipments": 4, "on_time_pct": 25.0, "damaged_pct": 25.0, "lost_pct": 25.0,
         "stuck_pct": 0.0, "csat_count": 2, "csat_average": 6.5},
    ]
    # a period without them
    assert api(supervisor).get(URL, {"from": "2020-01-01", "to": "2020-01-02"}).json()["results"] == []


@pytest.mark.django_db
def test_carriers_only_for_supervisors(api, agent, buyer, merchant_user):
    assert api(None).get(URL).status_code == 401
    for who in (agent, buyer, merchant_user):
        assert api(who).get(URL).status_code == 403


@pytest.mark.django_db
def test_carriers_query_count_is_constant(api, supervisor, django_assert_max_num_queries):
    client = api(supervisor)
    for carrier in ("顺丰速运", "圆通速递"):
        feed(shipment(carrier=carrier), "lost")
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL).status_code == 200
    for carrier in ("韵达快递", "申通快递", "京东物流", "邮政EMS"):
        for _ in range(3):
            feed(shipment(carrier=carrier), "damaged")
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(client.get(URL).json()["results"]) == 6
