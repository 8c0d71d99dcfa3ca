"""Every figure of the summary equals a direct count: the test reads the rows
back and computes each figure itself in plain Python (its own walk of the
chat conversations, its own nearest rank), for the whole period, per agent
and per queue, on whichever database the run uses (PostgreSQL, where the
percentiles are ``percentile_disc``, and SQLite, where they are not); and
the number of queries is the same at 10 and at 1,000 tickets."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compensation.models import Remedy
from compensation.rules import remedy_cost
from reports.rules import Period
from reports.tests.factories import chat, clock, executed_remedy, resolved_and_rated
from tickets import sla
from tickets.models import Message, Queue, Rating, SlaBreach, Ticket

URL = "/api/v1/reports/summary/"


def period_of_today(at=None) -> Period:
    """Today and tomorrow (local), or the day of ``at`` and the next: a
    test near midnight reads the day its rows were written on."""
    today = timezone.localdate(at) if at else timezone.localdate()
    return Period(first=today, last=today + timedelta(days=1))


def params(period: Period, **extra) -> dict:
    return {"from": period.first.isoformat(), "to": period.last.isoformat(), **extra}


@pytest.fixture
def seeded(settings, buyer, other_buyer, agent, other_agent, merchant):
    """Rated tickets with first replies of odd lengths, chats with several
    waits, internal notes, a web conversation (not a chat), a wait that began
    before the period, rows before the period, remedies, breaches."""
    settings.CHAT_RESPONSE_TARGET_S = 30
    rng = random.Random(6)
    period = period_of_today()
    now = timezone.now()
    queues = list(Queue.objects.all()[:2])
    for i in range(9):
        ticket = resolved_and_rated(buyer=buyer, agent=(agent, other_agent)[i % 2], score=rng.randint(0, 10),
                                    first_response_s=round(rng.uniform(1, 600), 3), region=("浙江", "广东")[i % 3 == 0],
                                    category=("logistics_delay", "parcel_damaged")[i % 2])
        if queues:
            Ticket.objects.filter(pk=ticket.pk).update(queue=queues[i % len(queues)])
        if i % 4 == 0:
            SlaBreach.objects.create(ticket=ticket, due_at=ticket.created_at, grade=ticket.grade,
                                     tier_before=1, tier_after=2)
    for who in (agent, other_agent, agent):
        script, at = [("buyer", 0.0)], 0.0
        for _ in range(rng.randint(2, 6)):
            at += rng.uniform(1, 90)
            script.append((rng.choice(["buyer", "buyer", "agent", "agent", "note"]), round(at, 3)))
        chat(buyer=buyer, agent=who, script=script, start=now)
    chat(buyer=buyer, agent=other_agent, script=[("buyer", 0), ("agent", 5.25)], start=now)  # a quick one
    # a web ticket's exchange is not a chat response
    chat(buyer=other_buyer, agent=agent, script=[("buyer", 0), ("agent", 45)], channel="web", start=now)
    # a wait that began before the period: its reply is not counted; the next one is
    chat(buyer=other_buyer, agent=other_agent, start=period.start - timedelta(seconds=30),
         script=[("buyer", 0), ("agent", 50), ("buyer", 60), ("note", 70), ("agent", 95), ("agent", 99)])
    # before the period: a rated, answered, resolved ticket and a chat
    with clock(period.start - timedelta(days=2)):
        resolved_and_rated(buyer=buyer, agent=agent, score=3, first_response_s=7)
    chat(buyer=buyer, agent=agent, start=period.start - timedelta(days=2), script=[("buyer", 0), ("agent", 5)])
    executed_remedy(buyer=buyer, agent=agent, merchant=merchant, kind="coupon")
    executed_remedy(buyer=buyer, agent=other_agent, merchant=merchant, kind="refund", amount_fen=1230,
                    with_coupon=True)
    executed_remedy(buyer=other_buyer, agent=agent, merchant=merchant, kind="resend")
    return period


# --- the direct count: rows read back, figures computed here -----------------

def _pct(part, whole):
    return round(100.0 * part / whole, 1) if whole else None


def _nearest_rank(values: list[float], p: int):
    ordered = sorted(values)
    return ordered[math.ceil(p / 100 * len(ordered)) - 1] if ordered else None


def direct(period: Period, group_by: str | None, target: int) -> dict:
    def inside(when) -> bool:
        return period.start <= when < period.end

    tickets = {t.pk: t for t in Ticket.objects.all()}
    by = {"agent": lambda t: t.assignee_id, "queue": lambda t: t.queue_id}.get(group_by, lambda t: "all")
    scores, first, chats = defaultdict(list), defaultdict(list), defaultdict(list)
    resolved, remedies = defaultdict(list), defaultdict(list)
    for rating in Rating.objects.all():
        if inside(rating.created_at):
            scores[by(tickets[rating.ticket_id])].append(rating.score)
    for ticket in tickets.values():
        if inside(ticket.created_at) and ticket.first_response_at is not None:
            first[by(ticket)].append((ticket.first_response_at - ticket.created_at).total_seconds())
    breached = set(SlaBreach.objects.values_list("ticket_id", flat=True))
    for ticket in tickets.values():
        if ticket.resolved_at is not None and inside(ticket.resolved_at):
            resolved[by(ticket)].append((ticket.grade, ticket.pk not in breached))
    for remedy in Remedy.objects.filter(status="executed"):
        if inside(remedy.executed_at):
            key = remedy.requested_by_id if group_by == "agent" else by(tickets[remedy.ticket_id])
            remedies[key].append((remedy.kind, remedy_cost(kind=remedy.kind, amount_fen=remedy.amount_fen,
                                                           with_coupon=remedy.with_coupon,
                                                           coupon_fen=remedy.coupon_fen)))
    # chat: walk each chat ticket's conversation; a wait opens at the first
    # public buyer message after an agent's public reply and the next public
    # agent reply ends it; counted when both are in the period
    waiting: dict[int, object] = {}
    for m in Message.objects.order_by("ticket_id", "seq"):
        ticket = tickets[m.ticket_id]
        if ticket.channel != "chat" or m.internal or m.author_role not in ("buyer", "agent"):
            continue
        if m.author_role == "buyer":
            waiting.setdefault(m.ticket_id, m.created_at)
        elif (since := waiting.pop(m.ticket_id, None)) is not None and inside(since) and inside(m.created_at):
            key = m.author_id if group_by == "agent" else by(ticket)
            chats[key].append((m.created_at - since).total_seconds())

    def figures(key) -> dict:
        s, f, c = scores[key], first[key], chats[key]
        return {
            "csat": {"count": len(s), "average": round(sum(s) / len(s), 2) if s else None,
                     "distribution": [s.count(i) for i in range(11)],
                     "promoters_pct": _pct(sum(1 for x in s if x >= 9), len(s)),
                     "detractors_pct": _pct(sum(1 for x in s if x <= 6), len(s))},
            "first_response_s": {"count": len(f), "p50": _nearest_rank(f, 50), "p90": _nearest_rank(f, 90),
                                 "average": round(sum(f) / len(f), 1) if f else None},
            "chat_response_s": {"count": len(c), "average": round(sum(c) / len(c), 1) if c else None,
                                "target_s": target, "over_target_pct": _pct(sum(1 for x in c if x > target), len(c))},
            "resolution_by_grade": [
                {"grade": grade, "count": sum(1 for g, _ in resolved[key] if g == grade),
                 "within_sla_pct": _pct(sum(1 for g, ok in resolved[key] if g == grade and ok),
                                        sum(1 for g, _ in resolved[key] if g == grade))}
                for grade, _label in sla.GRADE_CHOICES],
            "remedies": [{"kind": kind, "count": sum(1 for k, _ in remedies[key] if k == kind),
                          "amount_fen": sum(cost for k, cost in remedies[key] if k == kind)}
                         for kind in Remedy.Kind.values],
        }

    if group_by is None:
        return figures("all")
    keys = set(scores) | set(first) | set(chats) | set(resolved) | set(remedies)
    return {key: figures(key) for key in keys}


FIGURES = ("csat", "first_response_s", "chat_response_s", "resolution_by_grade", "remedies")


@pytest.mark.django_db
def test_each_figure_equals_a_direct_count(api, supervisor, seeded, settings):
    body = api(supervisor).get(URL, params(seeded)).json()
    expected = direct(seeded, None, settings.CHAT_RESPONSE_TARGET_S)
    for name in FIGURES:
        assert body[name] == expected[name], name
    # the seeding reached every figure (a figure of zeros would prove little)
    assert body["csat"]["count"] == 9 and body["first_response_s"]["count"] >= 12
    assert body["chat_response_s"]["count"] >= 3 and 0 < body["chat_response_s"]["over_target_pct"] < 100
    assert sum(r["count"] for r in body["remedies"]) == 3


@pytest.mark.django_db
@pytest.mark.parametrize("group_by", ["agent", "queue"])
def test_each_group_equals_a_direct_count(api, supervisor, seeded, settings, group_by):
    body = api(supervisor).get(URL, params(seeded, group_by=group_by)).json()
    expected = direct(seeded, group_by, settings.CHAT_RESPONSE_TARGET_S)
    groups = {g["id"]: g for g in body["groups"]}
    assert set(groups) == set(expected)
    for key, figures in expected.items():
        for name in FIGURES:
            assert groups[key][name] == figures[name], (key, name)
    whole = direct(seeded, None, settings.CHAT_RESPONSE_TARGET_S)
    for name in FIGURES:
        assert body[name] == whole[name], name


@pytest.mark.django_db
def test_a_wait_is_measured_from_its_first_buyer_message(api, supervisor, buyer, agent, settings):
    # given: two buyer lines, a note, the reply; a second reply with nothing waiting
    settings.CHAT_RESPONSE_TARGET_S = 30
    ticket = chat(buyer=buyer, agent=agent, script=[("buyer", 0), ("buyer", 10), ("note", 20), ("agent", 42),
                                                    ("agent", 50), ("buyer", 60), ("agent", 70)])
    # then the write path stored both waits on their replies, and none is open
    stored = list(Message.objects.filter(ticket=ticket, waited_from__isnull=False).order_by("seq")
                  .values_list("created_at", "waited_from"))
    assert [(reply - since).total_seconds() for reply, since in stored] == [42.0, 10.0]
    assert Ticket.objects.get(pk=ticket.pk).buyer_waiting_since is None
    body = api(supervisor).get(URL, params(period_of_today(ticket.created_at))).json()
    assert body["chat_response_s"] == {"count": 2, "average": 26.0, "target_s": 30, "over_target_pct": 50.0}


def _bulk(n: int, *, buyer, agents, start) -> None:
    """``n`` answered, resolved, rated tickets with a chat wait each, written
    in bulk (the query count test needs rows, not the services' path)."""
    tickets = Ticket.objects.bulk_create([
        Ticket(subject="s", category="logistics_delay", channel="chat", buyer=buyer, assignee=agents[i % 2],
               created_at=start, first_response_at=start + timedelta(seconds=i % 97),
               resolved_at=start + timedelta(hours=1), last_seq=2, last_public_seq=2)
        for i in range(n)])
    Message.objects.bulk_create([
        Message(ticket=t, seq=seq, author=who, author_role=role, body="x", created_at=start + timedelta(seconds=seq),
                waited_from=start + timedelta(seconds=1) if role == "agent" else None)
        for t in tickets for seq, who, role in ((1, buyer, "buyer"), (2, t.assignee, "agent"))])
    Rating.objects.bulk_create([Rating(ticket=t, buyer=buyer, score=i % 11, created_at=start)
                                for i, t in enumerate(tickets)])
    SlaBreach.objects.bulk_create([SlaBreach(ticket=t, due_at=start, grade=t.grade, tier_before=1, tier_after=2)
                                   for t in tickets[::7]])


@pytest.mark.django_db
def test_query_count_is_the_same_at_10_and_1000_tickets(api, supervisor, buyer, agent, other_agent,
                                                         django_assert_max_num_queries):
    client = api(supervisor)
    period = period_of_today()
    start = period.start + timedelta(minutes=5)
    _bulk(10, buyer=buyer, agents=[agent, other_agent], start=start)
    counts = {}
    for group_by in ("", "agent", "queue"):
        with CaptureQueriesContext(connection) as few:
            assert client.get(URL, params(period, group_by=group_by)).status_code == 200
        counts[group_by] = len(few.captured_queries)
    _bulk(990, buyer=buyer, agents=[agent, other_agent], start=start)
    for group_by, count in counts.items():
        with django_assert_max_num_queries(count):
            body = client.get(URL, params(period, group_by=group_by)).json()
        assert body["csat"]["count"] == 1000 and body["chat_response_s"]["count"] == 1000
        assert body["first_response_s"]["p90"] == float(_nearest_rank([i % 97 for i in range(1000)], 90))
