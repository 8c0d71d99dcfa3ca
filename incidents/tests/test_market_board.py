"""The market board (issue #14 item 5): every series of the last hour (tickets
in by category, chats waiting, first-reply time, CSAT rolling, spend against
budget), today against yesterday and the same hour last week, equals a direct
count of the seeded rows written here without the selector; thresholds
crossed are counted and raise the tile's alert; the selector costs the same
queries for 10 tickets as for 1,000."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from compensation.models import BudgetDay, Remedy
from incidents import events, selectors
from tickets.models import Rating, Ticket

DAYS = (0, 1, 7)
CATEGORIES = ["logistics_delay", "refund_request", "not_received", "coupon_failure", "wrong_item"]


def at_local(hour: int, minute: int, second: int = 0) -> datetime:
    """Today at a local clock time (the board's day is the local day)."""
    return timezone.make_aware(datetime.combine(timezone.localdate(), datetime.min.time())).replace(
        hour=hour, minute=minute, second=second)


NOW = None  # set per test: 15:37:20 today


def make_tickets(buyer, rows: list[dict]) -> list[Ticket]:
    """Tickets as they would stand after their history (bulk, the state field set at construction)."""
    return Ticket.objects.bulk_create([
        Ticket(subject="快递三天没动了", buyer=buyer, status=row.pop("status", "open"), **row) for row in rows])


def seeded(buyer, agent, now: datetime, rng: random.Random, *, n: int = 160) -> None:
    rows = []
    # today's hour: deterministic category counts so the top three are known (9, 6, 4, then 2 and 1)
    for category, count in zip(CATEGORIES, (9, 6, 4, 2, 1)):
        for _ in range(count):
            rows.append({"category": category, "channel": "web",
                         "created_at": now - timedelta(seconds=rng.randint(0, 59 * 60))})
    # chats and forms around now, yesterday and last week (and a few days that are in no window)
    for _ in range(n):
        d = rng.choice((0, 0, 1, 1, 7, 7, 3))
        created = now - timedelta(days=d, seconds=rng.randint(-30 * 60, 150 * 60))
        if created > now:
            created = now - timedelta(seconds=rng.randint(1, 600))
        answered = created + timedelta(seconds=rng.randint(3, 40 * 60)) if rng.random() < 0.7 else None
        if answered and answered > now:
            answered = None
        ended = answered + timedelta(minutes=rng.randint(1, 90)) if answered and rng.random() < 0.5 else None
        if ended and ended > now:
            ended = None
        unanswered_end = created + timedelta(minutes=rng.randint(1, 120)) if not answered and rng.random() < 0.2 else None
        if unanswered_end and unanswered_end > now:
            unanswered_end = None
        status = "resolved" if ended else ("closed" if unanswered_end else "open")
        rows.append({"category": rng.choice(CATEGORIES), "channel": rng.choice(("chat", "chat", "chat", "web")),
                     "created_at": created, "first_response_at": answered, "resolved_at": ended,
                     "closed_at": unanswered_end, "status": status})
    tickets = make_tickets(buyer, rows)
    # ratings over the three days' hours (and the hour before, which the rolling CSAT reaches)
    Rating.objects.bulk_create([
        Rating(ticket=t, buyer=buyer, score=rng.randint(0, 10),
               created_at=now - timedelta(days=rng.choice(DAYS), seconds=rng.randint(0, 130 * 60)))
        for t in rng.sample(tickets, min(90, len(tickets) // 2))])
    # executed remedies today, yesterday and last week at any hour
    remedies = []
    for t in rng.sample(tickets, min(40, len(tickets) // 4)):
        d = rng.choice(DAYS)
        when = timezone.localtime(now - timedelta(days=d)).replace(hour=rng.randint(0, 23), minute=rng.randint(0, 59))
        if when > now:
            when = now - timedelta(minutes=rng.randint(1, 300))
        kind = rng.choice(("refund", "coupon", "resend"))
        remedies.append(Remedy(ticket=t, buyer=buyer, requested_by=agent, kind=kind, reason="丢件赔付",
                               amount_fen=0 if kind == "resend" else rng.randint(100, 5000),
                               with_coupon=rng.random() < 0.5, coupon_fen=500, status="executed", executed_at=when))
    Remedy.objects.bulk_create(remedies)


def buckets(now: datetime):
    """(day index, bucket index, start, end) of every bucket, computed here from the definition."""
    start = (now - timedelta(minutes=59)).replace(second=0, microsecond=0)
    for day, d in enumerate(DAYS):
        for k in range(12):
            lo = start - timedelta(days=d) + timedelta(minutes=5 * k)
            yield day, k, lo, lo + timedelta(minutes=5)


def days(trend) -> list[list]:
    return [trend.today, trend.yesterday, trend.last_week]


@pytest.mark.django_db
def test_every_series_equals_a_direct_count(buyer, agent):
    now = at_local(15, 37, 20)
    seeded(buyer, agent, now, random.Random(14))
    board = selectors.dashboard(now=now)

    # tickets in by category: the hour's top three, each bucket a count of its own
    start = now.replace(second=0) - timedelta(minutes=59)
    hour_counts = {c: Ticket.objects.filter(category=c, created_at__gte=start, created_at__lt=start + timedelta(hours=1))
                   .count() for c in CATEGORIES}
    shown = [hour_counts[c] for c in board.categories]
    assert shown == sorted(hour_counts.values(), reverse=True)[:3]  # the hour's top three, most first
    chats = list(Ticket.objects.filter(channel="chat"))
    ratings = list(Rating.objects.all())
    for day, k, lo, hi in buckets(now):
        for code, trend in board.categories.items():
            assert days(trend)[day][k] == Ticket.objects.filter(category=code, created_at__gte=lo, created_at__lt=hi).count()
        # chats waiting at the bucket's end: opened, not answered, resolved or closed yet
        waiting = [t for t in chats if t.created_at < hi and all(
            when is None or when >= hi for when in (t.first_response_at, t.resolved_at, t.closed_at))]
        assert days(board.waiting)[day][k] == len(waiting), (day, k)
        assert Ticket.objects.filter(selectors.waiting_at(hi), channel="chat").count() == len(waiting)  # the ORM form
        # first reply: the chats whose first reply landed in the bucket
        waits = [(t.first_response_at - t.created_at).total_seconds() for t in chats
                 if t.first_response_at and lo <= t.first_response_at < hi]
        assert days(board.first_reply_s)[day][k] == (round(sum(waits) / len(waits), 1) if waits else None)
        # CSAT: every rating of the hour up to the bucket's end
        scores = [r.score for r in ratings if hi - timedelta(minutes=60) <= r.created_at < hi]
        assert days(board.csat)[day][k] == (round(sum(scores) / len(scores), 2) if scores else None)
    # chats waiting now, and what the console's queue shows: active chats with no reply
    assert board.waiting_chats == board.waiting.today[-1] == Ticket.objects.filter(
        channel="chat", status__in=["new", *Ticket.ACTIVE], first_response_at__isnull=True).count()
    assert board.waiting_chats > 0 and sum(board.waiting.yesterday) > 0 and sum(board.waiting.last_week) > 0

    # spend against budget: cumulative per hour of each day
    executed = list(Remedy.objects.filter(status="executed"))
    midnight = at_local(0, 0)
    assert len(board.spend_days.today) == 16 and len(board.spend_days.yesterday) == len(board.spend_days.last_week) == 24
    for day, d in enumerate(DAYS):
        for hour, value in enumerate(days(board.spend_days)[day]):
            first = midnight - timedelta(days=d)
            assert value == sum(r.cost_fen for r in executed
                                if first <= r.executed_at < first + timedelta(hours=hour + 1)), (day, hour)
    assert board.spend[-1][1] == board.spend_days.today[-1] > 0


@pytest.mark.django_db
def test_thresholds_crossed_are_counted_and_alert(buyer, agent, settings):
    now = at_local(10, 2, 40)
    seeded(buyer, agent, now, random.Random(5), n=120)
    BudgetDay.objects.update_or_create(date=timezone.localdate(now), defaults={"budget_fen": 10_000, "spent_fen": 0})
    settings.DASHBOARD_INFLOW_ALERT_PER_MIN = 1
    settings.BOARD_THRESHOLDS = {"category_per_bucket": 1, "waiting_chats": 2, "first_reply_s": 300,
                                 "spend_percent": 10, "csat_below": 6.0}
    board = selectors.dashboard(now=now)
    frame = events.board_payload(board)
    assert frame["type"] == "board"

    def over(values, limit, below=False):
        return [v is not None and (v < limit if below else v > limit) for v in values]

    checks = [
        (frame["inflow"], [v for _, v in board.inflow], 1, False, 5),
        (frame["waiting"], board.waiting.today, 2, False, 1),
        (frame["first_reply_s"], board.first_reply_s.today, 300, False, 1),
        (frame["csat"], board.csat.today, 6.0, True, 1),
        (frame["spend"], board.spend_days.today, 1_000, False, 1),
        *[(c, board.categories[c["code"]].today, 1, False, 1) for c in frame["categories"]],
    ]
    for shown, values, limit, below, recent in checks:
        hot = over(values, limit, below)
        assert (shown["threshold"], shown["below"]) == (limit, below)
        assert shown["crossed"] == sum(hot) and shown["alert"] == any(hot[-recent:])
    assert frame["spend"]["budget_fen"] == 10_000 and frame["waiting"]["now"] == board.waiting_chats
    assert any(s["crossed"] for s, *_ in checks)  # the seeded data crosses some of them

    # no threshold: nothing is crossed
    settings.BOARD_THRESHOLDS = {"category_per_bucket": 0, "waiting_chats": 0, "first_reply_s": 0,
                                 "spend_percent": 0, "csat_below": 0}
    settings.DASHBOARD_INFLOW_ALERT_PER_MIN = 0
    quiet = events.board_payload(board)
    for key in ("inflow", "waiting", "first_reply_s", "csat", "spend"):
        assert (quiet[key]["threshold"], quiet[key]["crossed"], quiet[key]["alert"]) == (None, 0, False)


@pytest.mark.django_db
def test_constant_queries_for_10_and_1000_tickets(buyer, agent, django_assert_max_num_queries):
    now = timezone.now()
    seeded(buyer, agent, now, random.Random(1), n=10)
    with django_assert_max_num_queries(12) as few:
        small = selectors.dashboard(now=now)
    seeded(buyer, agent, now, random.Random(2), n=1000)
    with django_assert_max_num_queries(12) as many:
        large = selectors.dashboard(now=now)
    assert len(few.captured_queries) == len(many.captured_queries)
    assert sum(large.waiting.today) > sum(small.waiting.today)


@pytest.mark.django_db
@pytest.mark.parametrize("language, title", [("zh-hans", "按类别进线"), ("en", "Tickets in by category")])
def test_board_page_in_both_languages_shows_crossed_thresholds(client, supervisor, buyer, agent, settings, language,
                                                               title, django_assert_max_num_queries):
    import json
    import re

    now = timezone.now()
    make_tickets(buyer, [{"category": "not_received", "channel": "chat", "created_at": now - timedelta(minutes=m)}
                         for m in range(6)])
    settings.BOARD_THRESHOLDS = {**settings.BOARD_THRESHOLDS, "waiting_chats": 3}
    client.force_login(supervisor)
    client.cookies["django_language"] = language
    html = client.get("/console/dashboard/", HTTP_ACCEPT_LANGUAGE=language).content.decode()
    assert title in html
    figures = json.loads(re.search(r'<script id="board-figures" type="application/json">(.*?)</script>', html, re.S)
                         .group(1))
    assert figures["waiting"]["now"] == 6 == Ticket.objects.filter(channel="chat", first_response_at__isnull=True).count()
    assert figures["waiting"]["alert"] and figures["categories"][0]["code"] == "not_received"
    assert re.search(r'class="tile trend-tile is-alert" data-tile="waiting"', html)
    assert 'data-tile="csat"' in html and 'class="tile trend-tile is-alert" data-tile="csat"' not in html
    labels = json.loads(re.search(r'<script id="board-labels" type="application/json">(.*?)</script>', html, re.S)
                        .group(1))
    assert labels["categories"]["not_received"] == ("丢件 / 未收到" if language == "zh-hans" else "Parcel lost / not received")
    # the fragment: the same queries for 6 tickets as for 200 (the embedded default reads its session from the database)
    bound = 16 + (settings.SESSION_ENGINE == "django.contrib.sessions.backends.db")
    with django_assert_max_num_queries(bound) as few:
        client.get("/console/dashboard/figures/", HTTP_HX_REQUEST="true")
    make_tickets(buyer, [{"category": "refund_request", "channel": "chat", "created_at": now - timedelta(seconds=s * 17)}
                         for s in range(200)])
    with django_assert_max_num_queries(bound) as many:
        client.get("/console/dashboard/figures/", HTTP_HX_REQUEST="true")
    assert len(few.captured_queries) == len(many.captured_queries)
