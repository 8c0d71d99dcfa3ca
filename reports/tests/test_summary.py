"""GET /api/v1/reports/summary/: every figure equals what the database holds
for the seeded rows (numbers written out here), per agent and per queue too;
supervisors only; bad periods are 400s with a code; the query count does not
grow with the rows."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compensation.models import Remedy
from reports.tests.factories import chat, executed_remedy, resolved_and_rated
from tickets import sla
from tickets.models import Rating, SlaBreach, Ticket
from tickets.tests.factories import open_ticket

URL = "/api/v1/reports/summary/"


def window() -> dict:
    today = timezone.localdate()
    return {"from": (today - timedelta(days=1)).isoformat(), "to": (today + timedelta(days=1)).isoformat()}


@pytest.fixture
def seeded(settings, buyer, other_buyer, agent, other_agent, merchant):
    settings.CHAT_RESPONSE_TARGET_S = 30
    # five resolved tickets: scores 10, 9, 7, 6, 0; first replies 10, 20, 30, 40, 100 s
    rated = [
        resolved_and_rated(buyer=buyer, agent=agent, score=10, first_response_s=10, region="浙江"),
        resolved_and_rated(buyer=buyer, agent=agent, score=9, first_response_s=20, region="浙江"),
        resolved_and_rated(buyer=buyer, agent=agent, score=7, first_response_s=30, region="广东"),
        resolved_and_rated(buyer=buyer, agent=other_agent, score=6, first_response_s=40, region="广东",
                           category="parcel_damaged"),
        resolved_and_rated(buyer=buyer, agent=other_agent, score=0, first_response_s=100, region="广东",
                           category="parcel_damaged"),
    ]
    # one of them breached its deadline on the way
    breached = rated[4]
    SlaBreach.objects.create(ticket=breached, due_at=breached.created_at, grade=breached.grade,
                             tier_before=1, tier_after=2)
    # chats: agent answers after 20 s, then 40 s (two buyer lines); other_agent after 50 s
    chat(buyer=buyer, agent=agent, script=[("buyer", 0), ("agent", 20), ("buyer", 60), ("buyer", 70),
                                           ("agent", 100), ("agent", 110)])
    chat(buyer=buyer, agent=other_agent, script=[("buyer", 0), ("agent", 50)])
    # remedies: a ¥5 coupon, a ¥12.30 refund with the ¥5 coupon, a resend
    executed_remedy(buyer=buyer, agent=agent, merchant=merchant, kind="coupon")
    executed_remedy(buyer=buyer, agent=other_agent, merchant=merchant, kind="refund", amount_fen=1230,
                    with_coupon=True)
    executed_remedy(buyer=other_buyer, agent=agent, merchant=merchant, kind="resend")  # a buyer has 2 a day
    return rated


@pytest.mark.django_db
def test_summary_figures_equal_the_database(api, supervisor, seeded):
    response = api(supervisor).get(URL, window())
    assert response.status_code == 200, response.json()
    body = response.json()

    scores = sorted(Rating.objects.values_list("score", flat=True))
    assert scores == [0, 6, 7, 9, 10]
    assert body["csat"] == {
        "count": 5, "average": 6.4, "distribution": [1, 0, 0, 0, 0, 0, 1, 1, 0, 1, 1],
        "promoters_pct": 40.0, "detractors_pct": 40.0,
    }
    # the five rated tickets and the two chats have a first reply (10, 20, 30, 40, 100; 20, 50 s)
    assert Ticket.objects.filter(first_response_at__isnull=False).count() == 7
    assert body["first_response_s"] == {"count": 7, "p50": 30.0, "p90": 100.0, "average": 38.6}
    assert body["chat_response_s"] == {"count": 3, "average": 36.7, "target_s": 30, "over_target_pct": 66.7}

    by_grade = {row["grade"]: row for row in body["resolution_by_grade"]}
    assert [row["grade"] for row in body["resolution_by_grade"]] == [grade for grade, _ in sla.GRADE_CHOICES]
    resolved = Ticket.objects.filter(resolved_at__isnull=False)
    general = resolved.first().grade
    assert by_grade[general] == {"grade": general, "count": resolved.count(), "within_sla_pct": 80.0}
    assert sum(row["count"] for row in body["resolution_by_grade"]) == resolved.count() == 5

    remedies = {row["kind"]: row for row in body["remedies"]}
    assert Remedy.objects.filter(status="executed").count() == 3
    coupon = Remedy.objects.get(kind="coupon").amount_fen
    assert remedies == {
        "coupon": {"kind": "coupon", "count": 1, "amount_fen": coupon},
        "refund": {"kind": "refund", "count": 1, "amount_fen": 1230 + Remedy.objects.get(kind="refund").coupon_fen},
        "resend": {"kind": "resend", "count": 1, "amount_fen": 0},
    }
    first = timezone.localdate() - timedelta(days=1)
    assert body["period"] == {"from": first.isoformat(), "to": window()["to"],
                              "previous_from": (first - timedelta(days=3)).isoformat(),
                              "previous_to": (first - timedelta(days=1)).isoformat()}


@pytest.mark.django_db
def test_summary_per_agent_and_per_queue(api, supervisor, agent, other_agent, seeded):
    body = api(supervisor).get(URL, {**window(), "group_by": "agent"}).json()
    assert body["group_by"] == "agent"
    groups = {g["id"]: g for g in body["groups"]}
    mine = groups[agent.pk]
    assert mine["name"] == agent.name
    assert mine["csat"]["count"] == Rating.objects.filter(ticket__assignee=agent).count() == 3
    assert mine["csat"]["distribution"][10] == 1 and mine["csat"]["average"] == round((10 + 9 + 7) / 3, 2)
    assert mine["first_response_s"] == {"count": 4, "p50": 20.0, "p90": 30.0, "average": 20.0}
    assert mine["chat_response_s"]["count"] == 2 and mine["chat_response_s"]["average"] == 30.0
    theirs = groups[other_agent.pk]
    assert theirs["csat"]["count"] == 2 and theirs["chat_response_s"]["average"] == 50.0
    assert sum(r["within_sla_pct"] or 0 for r in theirs["resolution_by_grade"]) == 50.0
    remedies = {r["kind"]: r["count"] for r in mine["remedies"]}
    assert remedies == {"coupon": 1, "refund": 0, "resend": 1}
    # the groups add up to the whole
    assert sum(g["csat"]["count"] for g in body["groups"]) == body["csat"]["count"]
    assert sum(g["chat_response_s"]["count"] for g in body["groups"]) == body["chat_response_s"]["count"]

    body = api(supervisor).get(URL, {**window(), "group_by": "queue"}).json()
    assert body["group_by"] == "queue"
    queues = {g["id"]: g for g in body["groups"]}
    for queue_id, group in queues.items():
        assert group["csat"]["count"] == Rating.objects.filter(ticket__queue_id=queue_id).count()
    assert sum(g["csat"]["count"] for g in body["groups"]) == 5


@pytest.mark.django_db
def test_top_categories_rise_against_the_previous_period(api, supervisor, buyer):
    today = timezone.localdate()
    earlier = timezone.now() - timedelta(days=7)
    from merchants.tests.factories import OrderFactory

    def tickets(n, *, category, region, when=None):
        for _ in range(n):
            ticket = open_ticket(buyer=buyer, order=OrderFactory(buyer=buyer, region=region), category=category)
            if when:
                Ticket.objects.filter(pk=ticket.pk).update(created_at=when)

    tickets(2, category="parcel_damaged", region="浙江", when=earlier)   # before: 2
    tickets(6, category="parcel_damaged", region="浙江")                 # now: 6 → +200 %
    tickets(3, category="logistics_delay", region="广东", when=earlier)  # 3 → 1: falling
    tickets(1, category="logistics_delay", region="广东")
    tickets(2, category="not_received", region="四川")                    # new
    body = api(supervisor).get(URL, {"from": (today - timedelta(days=6)).isoformat(),
                                     "to": today.isoformat()}).json()
    assert body["top_categories"] == [
        {"category": "parcel_damaged", "region": "浙江", "count": 6, "previous_count": 2, "change_pct": 200.0},
        {"category": "not_received", "region": "四川", "count": 2, "previous_count": 0, "change_pct": None},
        {"category": "logistics_delay", "region": "广东", "count": 1, "previous_count": 3, "change_pct": -66.7},
    ]


@pytest.mark.django_db
def test_empty_period_has_nulls_not_errors(api, supervisor):
    body = api(supervisor).get(URL, {"from": "2020-01-01", "to": "2020-01-31"}).json()
    assert body["csat"] == {"count": 0, "average": None, "distribution": [0] * 11,
                            "promoters_pct": None, "detractors_pct": None}
    assert body["first_response_s"]["p50"] is None and body["top_categories"] == []


@pytest.mark.django_db
def test_only_supervisors(api, agent, buyer, merchant_user):
    assert api(None).get(URL).status_code == 401
    for who in (agent, buyer, merchant_user):
        response = api(who).get(URL)
        assert response.status_code == 403 and response.json()["code"] == "permission_denied"


@pytest.mark.django_db
@pytest.mark.parametrize("params, code", [
    ({"from": "yesterday"}, "invalid_date"),
    ({"from": "2026-13-01"}, "invalid_date"),
    ({"from": "2026-02-30"}, "invalid_date"),
    ({"to": "２０２６-01-01"}, "invalid_date"),
    ({"from": "0001-01-01", "to": "0001-01-02"}, "invalid_date"),
    ({"to": "9999-12-31"}, "invalid_date"),
    ({"from": "2026-03-02", "to": "2026-03-01"}, "period_reversed"),
    ({"from": "2020-01-01", "to": "2026-01-01"}, "period_too_long"),
    ({"group_by": "merchant"}, "invalid_group_by"),
])
def test_bad_input_is_400_with_a_code(api, supervisor, params, code):
    for url in (URL, "/api/v1/reports/carriers/"):
        if url != URL and "group_by" in params:
            continue
        response = api(supervisor).get(url, params)
        assert response.status_code == 400, response.content
        assert response.json()["code"] == code


@pytest.mark.django_db
def test_query_count_does_not_grow_with_rows(api, supervisor, buyer, agent, other_agent, django_assert_max_num_queries):
    client = api(supervisor)

    def seed(n, who):
        for i in range(n):
            resolved_and_rated(buyer=buyer, agent=who, score=i % 11, first_response_s=5 + i)
        chat(buyer=buyer, agent=who, script=[("buyer", 0), ("agent", 9)])

    seed(2, agent)
    with CaptureQueriesContext(connection) as few:
        assert client.get(URL, {**window(), "group_by": "agent"}).status_code == 200
    seed(8, other_agent)
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = client.get(URL, {**window(), "group_by": "agent"}).json()
    assert body["csat"]["count"] == 10 and len(body["groups"]) == 2
