"""The rollup path (``DailyFigure``): closed days read from the rollup, the
days after ``RollupState.through`` live, and every figure still equal to a
direct count (``test_direct_counts.direct``) — before the job has run, after
it, after a late row, a reopen, a carrier event or a rating arriving for a
rolled day (reflected from the job's next run: the semantics of
``reports.services.refresh_rollups``), after the chat target changes; a
recompute is idempotent. On whichever database the run uses (PostgreSQL or
the embedded SQLite)."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from incidents import services as incidents
from incidents.tests.factories import event, integration_user
from reports.models import DailyFigure, RollupState
from reports.rules import Period
from reports.services import refresh_rollups, roll_up_day
from reports.tests.factories import chat, clock, executed_remedy, resolved_and_rated, shipment
from reports.tests.test_direct_counts import FIGURES, direct
from tickets import services as tickets
from tickets.models import Queue, Rating, SlaBreach, Ticket
from tickets.tests.factories import ticket_in_state

URL = "/api/v1/reports/summary/"
CARRIERS = "/api/v1/reports/carriers/"


def at(day, hour: int, minute: int = 0):
    return timezone.make_aware(datetime.combine(day, time(hour, minute)))


def params(period: Period, **extra) -> dict:
    return {"from": period.first.isoformat(), "to": period.last.isoformat(), **extra}


@pytest.fixture
def days(settings, buyer, other_buyer, agent, other_agent, merchant):
    """Three days of rated, answered, resolved tickets, chats, remedies and
    a breach: two days ago, yesterday and today; a chat wait across
    yesterday's midnight."""
    settings.CHAT_RESPONSE_TARGET_S = 30
    today = timezone.localdate()
    queues = list(Queue.objects.all()[:2])
    for back in (2, 1, 0):
        day = today - timedelta(days=back)
        with clock(at(day, 0, 30)):
            for i in range(3):
                ticket = resolved_and_rated(buyer=buyer, agent=(agent, other_agent)[i % 2], score=(3 * i + back) % 11,
                                            first_response_s=17 * i + back + 0.5, region=("浙江", "广东")[i % 2],
                                            category=("logistics_delay", "parcel_damaged")[(i + back) % 2])
                if queues:
                    Ticket.objects.filter(pk=ticket.pk).update(queue=queues[i % len(queues)])
                if i == back:
                    SlaBreach.objects.create(ticket=ticket, due_at=ticket.created_at, grade=ticket.grade,
                                             tier_before=1, tier_after=2)
            executed_remedy(buyer=buyer, agent=(agent, other_agent)[back % 2], merchant=merchant,
                            kind=("coupon", "refund", "resend")[back], with_coupon=back == 1,
                            amount_fen=1230 if back == 1 else None)
        chat(buyer=buyer, agent=(agent, other_agent)[back % 2], start=at(day, 1),
             script=[("buyer", 0), ("agent", 12 + back), ("buyer", 30), ("note", 40), ("agent", 75.5)])
    # a wait that began before midnight and was answered after it
    chat(buyer=other_buyer, agent=agent, start=at(today, 0) - timedelta(seconds=20),
         script=[("buyer", 0), ("agent", 50)])
    return today


def equal_to_direct(body: dict, period: Period, group_by: str | None, target: int) -> None:
    whole = direct(period, None, target)
    for name in FIGURES:
        assert body[name] == whole[name], name
    if group_by:
        expected = direct(period, group_by, target)
        groups = {g["id"]: g for g in body["groups"]}
        assert set(groups) == set(expected)
        for key, figures in expected.items():
            for name in FIGURES:
                assert groups[key][name] == figures[name], (key, name)


PERIODS = {
    "three days": lambda today: Period(first=today - timedelta(days=2), last=today),
    "rolled days only": lambda today: Period(first=today - timedelta(days=2), last=today - timedelta(days=1)),
    "today only": lambda today: Period(first=today, last=today),
    "yesterday and today": lambda today: Period(first=today - timedelta(days=1), last=today),
}


@pytest.mark.django_db
@pytest.mark.parametrize("group_by", ["", "agent", "queue"])
def test_rolled_days_plus_today_equal_the_live_report_and_direct_counts(api, supervisor, days, settings, group_by):
    client = api(supervisor)
    live = {name: client.get(URL, params(make(days), group_by=group_by)).json() for name, make in PERIODS.items()}
    live_carriers = {name: client.get(CARRIERS, params(make(days))).json() for name, make in PERIODS.items()}

    # when: the job rolls the closed days up
    assert refresh_rollups() >= 2
    state = RollupState.objects.get()
    assert state.through == days - timedelta(days=1) and state.chat_target_s == 30
    assert DailyFigure.objects.filter(day=days - timedelta(days=2)).exists()
    assert not DailyFigure.objects.filter(day=days).exists()

    # then: every report is what it was when read live, and equals a direct count
    for name, make in PERIODS.items():
        body = client.get(URL, params(make(days), group_by=group_by)).json()
        assert body == live[name], name
        equal_to_direct(body, make(days), group_by or None, 30)
        assert client.get(CARRIERS, params(make(days))).json() == live_carriers[name], name
    three = live["three days"]
    assert three["csat"]["count"] == 9 and three["chat_response_s"]["count"] == 7
    assert sum(r["count"] for r in three["remedies"]) == 3 and three["top_categories"]


@pytest.mark.django_db
def test_the_rollup_is_what_is_read_and_a_late_row_lands_on_the_next_run(api, supervisor, days, buyer, agent):
    client = api(supervisor)
    period = Period(first=days - timedelta(days=2), last=days)
    refresh_rollups()
    before = client.get(URL, params(period)).json()
    # given: a rating committed after its day (yesterday) was rolled up
    yesterday = days - timedelta(days=1)
    with clock(at(yesterday, 3)):
        ticket = resolved_and_rated(buyer=buyer, agent=agent, score=None)
    Rating.objects.create(ticket=ticket, buyer=buyer, score=10, created_at=at(yesterday, 23, 59))
    # then: closed days are read from the rollup (not yet there) ...
    assert client.get(URL, params(period)).json()["csat"] == before["csat"]
    # ... and the job's next run recomputes the recent days: reflected, exact
    refresh_rollups()
    body = client.get(URL, params(period)).json()
    assert body["csat"]["count"] == before["csat"]["count"] + 1
    equal_to_direct(body, period, None, 30)


@pytest.mark.django_db
def test_a_reopened_resolution_leaves_its_rolled_day_on_the_next_run(api, supervisor, days, buyer, agent):
    client = api(supervisor)
    yesterday = days - timedelta(days=1)
    period = Period(first=yesterday, last=yesterday)
    with clock(at(yesterday, 5)):
        ticket = ticket_in_state("resolved", buyer=buyer, agent=agent)
    refresh_rollups()
    resolved = sum(r["count"] for r in client.get(URL, params(period)).json()["resolution_by_grade"])
    # when: the buyer reopens it today (inside REOPEN_WINDOW)
    tickets.transition_ticket(actor=buyer, ticket_id=ticket.pk, name="reopen")
    assert Ticket.objects.get(pk=ticket.pk).resolved_at is None
    refresh_rollups()
    body = client.get(URL, params(period, group_by="agent")).json()
    assert sum(r["count"] for r in body["resolution_by_grade"]) == resolved - 1
    equal_to_direct(body, period, "agent", 30)


@pytest.mark.django_db
def test_a_carrier_event_and_a_rating_for_an_old_shipped_day_land_on_the_next_run(api, supervisor, agent):
    # given: a shipment shipped 20 days ago (outside the recompute window), rolled up
    client = api(supervisor)
    today = timezone.localdate()
    old = shipment(carrier="顺丰速运", shipped_at=timezone.now() - timedelta(days=20),
                   eta=today + timedelta(days=1))
    shipment(carrier="顺丰速运")
    refresh_rollups()
    period = Period(first=today - timedelta(days=29), last=today)
    assert client.get(CARRIERS, params(period)).json()["results"][0]["on_time_pct"] == 0.0
    # when: its delivered event and a rating of a ticket about it arrive today
    incidents.ingest_logistics_event(actor=integration_user(), payload=event(old, "delivered"))
    ticket = ticket_in_state("resolved", buyer=old.order.buyer, agent=agent, order=old.order)
    tickets.rate_ticket(actor=old.order.buyer, ticket_id=ticket.pk, score=7)
    refresh_rollups()
    # then
    assert client.get(CARRIERS, params(period)).json()["results"] == [
        {"carrier": "顺丰速运", "shipments": 2, "on_time_pct": 50.0, "damaged_pct": 0.0, "lost_pct": 0.0,
         "stuck_pct": 0.0, "csat_count": 1, "csat_average": 7.0}]


@pytest.mark.django_db
def test_a_recompute_is_idempotent(days):
    def rows():
        return sorted(DailyFigure.objects.values_list("day", "grouping", "group_id", "measure", "key", "key2", "count",
                                                      "total", "extra", "extra2", "extra3", "ratings", "rating_sum"),
                      key=repr)

    refresh_rollups()
    first = rows()
    assert first
    refresh_rollups()
    assert rows() == first
    roll_up_day(day=days - timedelta(days=1))
    refresh_rollups(rebuild=True)
    assert rows() == first


@pytest.mark.django_db
def test_a_new_chat_target_is_exact_at_once_and_recomputed_by_the_job(api, supervisor, days, settings):
    client = api(supervisor)
    period = Period(first=days - timedelta(days=2), last=days)
    refresh_rollups()
    settings.CHAT_RESPONSE_TARGET_S = 14
    body = client.get(URL, params(period, group_by="agent")).json()
    assert body["chat_response_s"]["target_s"] == 14
    equal_to_direct(body, period, "agent", 14)  # the rollup's counts were against 30: read live
    refresh_rollups()
    assert RollupState.objects.get().chat_target_s == 14
    body = client.get(URL, params(period, group_by="agent")).json()
    equal_to_direct(body, period, "agent", 14)


@pytest.mark.django_db
def test_rolled_query_count_does_not_grow_with_the_days(api, supervisor, days):
    refresh_rollups()
    client = api(supervisor)
    counts = []
    for first in (days - timedelta(days=1), days - timedelta(days=2)):
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(URL, params(Period(first=first, last=days), group_by="agent")).status_code == 200
        counts.append(len(ctx.captured_queries))
    assert counts[0] == counts[1]
