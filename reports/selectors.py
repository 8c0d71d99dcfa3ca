"""The reports' reads: every figure an aggregate in the database (no row
comes back to Python but on SQLite's percentiles), in a fixed number of
queries whatever the number of rows, read inside ``analytic_reads()`` (they may
lag the primary by the replica's delay, like the dashboard; on PostgreSQL one
transaction with a reporting session's planner settings).

Who counts where, for a period of whole local days (``rules.Period``):

- ``csat``: the ratings given in the period (a ticket's ``Rating``), 0–10.
- ``first_response_s``: tickets opened in the period that have a first agent
  reply, seconds from opening to that reply.
- ``chat_response_s``: in chat tickets, each stretch of public buyer messages
  and the public agent reply that ends it (internal notes, merchants' words and
  notices neither start nor end one), seconds from the first buyer message of
  the stretch to the reply, counted when both are in the period (a wait that
  began the day before belongs to no day's report); ``over_target_pct``
  against ``settings.CHAT_RESPONSE_TARGET_S``. The write paths store each
  reply's ``waited_from`` (``tickets.services.conversation.buyer_wait``), so
  this is one aggregate over an index; a merge's copied messages carry none
  (the replies were counted on the ticket they were said in).
- ``resolution_by_grade``: tickets resolved in the period, by grade, and the
  share of them without any recorded SLA breach (``SlaBreach``).
- ``remedies``: remedies executed in the period, by kind; ``amount_fen`` is
  what they cost the compensation budget (``compensation.rules.remedy_cost``:
  a refund's or coupon's cash plus the coupon that goes with a refund or resend).
- ``top_categories``: tickets opened in the period by category and the order's
  region (``""`` without an order), against the same number of days just
  before; the ten that grew most (by tickets added, then by count).

Per agent: ratings and first replies by the ticket's assignee, chat replies
by their author, resolutions by the assignee, remedies by who requested them.
Per queue: by the ticket's queue. ``id`` null collects the unassigned.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from django.conf import settings
from django.db import connections
from django.db.models import Aggregate, Avg, BigIntegerField, Case, Count, F, FloatField, Func, Q, Sum, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from accounts.models import User
from compensation.models import Remedy
from compensation.rules import remedy_cost
from core.db_router import analytic_reads
from incidents.models import LogisticsEvent
from merchants.models import Shipment
from reports.models import DailyFigure, RollupState
from reports.rules import Period, change_pct, pct, percentile
from tickets import sla
from tickets.models import Message, Queue, Rating, SlaBreach, Ticket

TOP_CATEGORIES = 10

# the field naming the group in each population, per grouping
_KEYS = {
    "agent": {"rating": "ticket__assignee_id", "ticket": "assignee_id", "remedy": "requested_by_id"},
    "queue": {"rating": "ticket__queue_id", "ticket": "queue_id", "remedy": "ticket__queue_id"},
}
_ALL = "__all__"  # the accumulator of the whole period, beside the groups


@dataclass
class _Figures:
    scores: list[int] = field(default_factory=lambda: [0] * 11)
    first_response: dict = field(default_factory=lambda: {"count": 0, "p50": None, "p90": None, "average": None})
    chat: list = field(default_factory=lambda: [0, 0.0, 0])  # [replies, seconds in all, over target]
    resolved: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # grade → [n, ok]
    remedies: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # kind → [n, fen]

    def as_dict(self, *, target_s: int) -> dict:
        count = sum(self.scores)
        total = sum(score * n for score, n in enumerate(self.scores))
        replies, waited, over = self.chat
        return {
            "csat": {
                "count": count,
                "average": round(total / count, 2) if count else None,
                "distribution": list(self.scores),
                "promoters_pct": pct(self.scores[9] + self.scores[10], count),
                "detractors_pct": pct(sum(self.scores[:7]), count),
            },
            "first_response_s": dict(self.first_response),
            "chat_response_s": {
                "count": replies,
                "average": round(waited / replies, 1) if replies else None,
                "target_s": target_s,
                "over_target_pct": pct(over, replies),
            },
            "resolution_by_grade": [
                {"grade": grade, "count": self.resolved[grade][0],
                 "within_sla_pct": pct(self.resolved[grade][1], self.resolved[grade][0])}
                for grade, _label in sla.GRADE_CHOICES
            ],
            "remedies": [
                {"kind": kind, "count": self.remedies[kind][0], "amount_fen": self.remedies[kind][1]}
                for kind in Remedy.Kind.values
            ],
        }


class Seconds(Func):
    """Seconds from ``start`` to ``end`` from the microseconds between them,
    as Python's ``total_seconds()`` has them: the interval's epoch on
    PostgreSQL, Django's own ``django_timestamp_diff`` on SQLite."""

    output_field = FloatField()

    def __init__(self, end, start):
        super().__init__(end, start)

    def as_sql(self, compiler, connection, **extra):
        raise NotImplementedError(f"Seconds has no SQL for {connection.vendor}")

    def as_postgresql(self, compiler, connection, **extra):
        # date_part is double precision (EXTRACT is numeric since PostgreSQL 14,
        # a third slower to sum): the interval's microseconds / 10⁶, the same
        # float as Python's timedelta.total_seconds()
        return super().as_sql(compiler, connection, template="date_part('epoch', %(expressions)s)",
                              arg_joiner=" - ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, template="(django_timestamp_diff(%(expressions)s) / 1000000.0)",
                              arg_joiner=", ", **extra)


class Microseconds(Func):
    """Whole microseconds from ``start`` to ``end`` (an integer: the rollup
    sums them exactly)."""

    output_field = BigIntegerField()

    def __init__(self, end, start):
        super().__init__(end, start)

    def as_sql(self, compiler, connection, **extra):
        raise NotImplementedError(f"Microseconds has no SQL for {connection.vendor}")

    def as_postgresql(self, compiler, connection, **extra):
        # EXTRACT of an interval is numeric (exact) since PostgreSQL 14
        return super().as_sql(compiler, connection, template="(EXTRACT(EPOCH FROM (%(expressions)s)) * 1000000)::bigint",
                              arg_joiner=" - ", **extra)

    def as_sqlite(self, compiler, connection, **extra):
        return super().as_sql(compiler, connection, template="django_timestamp_diff(%(expressions)s)",
                              arg_joiner=", ", **extra)


class NearestRank(Aggregate):
    """PostgreSQL's ``percentile_disc``: the smallest value with at least
    ``p`` % of the values at or below it, which is ``rules.percentile`` (its
    ``ceil(p/100·n)``-th value; for 50 and 90 the float product rounds the same
    way as the integer one for every n up to millions, checked)."""

    function = "PERCENTILE_DISC"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = FloatField()

    def __init__(self, expression, *, p: int, **extra):
        super().__init__(expression, fraction=repr(p / 100), **extra)


def target_s() -> int:
    return int(settings.CHAT_RESPONSE_TARGET_S)


def summary(*, period: Period, group_by: str | None = None) -> dict:
    """The period's figures (``GET /api/v1/reports/summary/``), and with
    ``group_by`` (``agent`` or ``queue``) the same per group in ``groups``."""
    with analytic_reads(Ticket):
        return _summary(period=period, group_by=group_by)


def rollup_state() -> dict:
    """Through which local day the reports read ``DailyFigure`` (None: not
    rolled up yet, every figure live), and the chat target its over-target
    counts were taken against."""
    return (RollupState.objects.filter(pk=1).values("through", "chat_target_s").first()
            or {"through": None, "chat_target_s": None})


def _split(period: Period, through: date | None) -> tuple[Period | None, Period | None]:
    """The period's days read from the rollup (up to ``through``) and those read live (after it)."""
    if through is None or through < period.first:
        return None, period
    if through >= period.last:
        return period, None
    return Period(first=period.first, last=through), Period(first=through + timedelta(days=1), last=period.last)


def _summary(*, period: Period, group_by: str | None) -> dict:
    keys = _KEYS.get(group_by or "", {})
    acc: dict[object, _Figures] = defaultdict(_Figures)

    def into(key) -> list[_Figures]:
        return [acc[_ALL], acc[key]] if group_by else [acc[_ALL]]

    target = target_s()
    state = rollup_state()
    rolled, live = _split(period, state["through"])
    chat_rolled = rolled is not None and state["chat_target_s"] == target
    if rolled:
        _from_rollup(rolled, group_by=group_by, since=period.first, chat=chat_rolled, into=into)

    if live:
        # csat: one row per (group, score)
        ratings = Rating.objects.filter(created_at__gte=live.start, created_at__lt=live.end)
        key = keys.get("rating")
        for row in ratings.values(*([key] if key else []), "score").annotate(n=Count("id")).order_by():
            for figures in into(row.get(key)):
                if 0 <= row["score"] <= 10:
                    figures.scores[row["score"]] += row["n"]

    # first response: seconds per ticket, aggregated where the tickets are
    # (percentiles do not add up across days: always the whole period's rows)
    key = keys.get("ticket")
    opened = Ticket.objects.filter(created_at__gte=period.start, created_at__lt=period.end,
                                   first_response_at__isnull=False)
    _first_responses(opened, key=key, into=into, grouped=bool(group_by))

    # chat: each agent reply that ended a buyer's wait keeps when the wait
    # began (``Message.waited_from``, stored by the write paths), so a reply
    # counts when it and the wait's first buyer message are in the period;
    # from the rollup up to its last day unless the target changed since
    chat_live = live if chat_rolled else period
    if chat_live:
        replies = (Message.objects.filter(created_at__gte=chat_live.start, created_at__lt=chat_live.end,
                                          waited_from__gte=period.start)
                   .annotate(waited=Seconds(F("created_at"), F("waited_from"))))
        key = {"agent": "author_id", "queue": "ticket__queue_id"}.get(group_by or "")
        sums = {"n": Count("id"), "total": Sum("waited"), "over": Count("id", filter=Q(waited__gt=target))}
        # (``values()`` of no field would group by every column: the whole period is one aggregate)
        for row in replies.values(key).annotate(**sums).order_by() if key else [replies.aggregate(**sums)]:
            for figures in into(row.get(key)):
                figures.chat[0] += row["n"]
                figures.chat[1] += float(row["total"] or 0)
                figures.chat[2] += row["over"]

    if live:
        # resolution by grade: (group, grade) → resolved, and of them those
        # with a breach, counted from the breaches' side (a join, where a NOT
        # EXISTS per resolved ticket was a subplan run 60,000 times a month)
        key = keys.get("ticket")
        resolved = Ticket.objects.filter(resolved_at__gte=live.start, resolved_at__lt=live.end)
        for row in resolved.values(*([key] if key else []), "grade").annotate(n=Count("id")).order_by():
            for figures in into(row.get(key)):
                figures.resolved[row["grade"]][0] += row["n"]
                figures.resolved[row["grade"]][1] += row["n"]
        ticket_key = f"ticket__{key}" if key else None
        for row in (SlaBreach.objects.filter(ticket__resolved_at__gte=live.start, ticket__resolved_at__lt=live.end)
                    .values(*([ticket_key] if ticket_key else []), "ticket__grade")
                    .annotate(n=Count("ticket_id", distinct=True)).order_by()):
            for figures in into(row.get(ticket_key)):
                figures.resolved[row["ticket__grade"]][1] -= row["n"]

        # remedies executed, by kind; their cost is linear in the sums
        key = keys.get("remedy")
        remedies = (Remedy.objects.filter(status=Remedy.Status.EXECUTED, executed_at__gte=live.start,
                                          executed_at__lt=live.end)
                    .values(*([key] if key else []), "kind", "with_coupon")
                    .annotate(n=Count("id"), amount=Sum("amount_fen"), coupons=Sum("coupon_fen")).order_by())
        for row in remedies:
            cost = remedy_cost(kind=row["kind"], amount_fen=row["amount"] or 0, with_coupon=row["with_coupon"],
                               coupon_fen=row["coupons"] or 0)
            for figures in into(row.get(key)):
                figures.remedies[row["kind"]][0] += row["n"]
                figures.remedies[row["kind"]][1] += cost

    result = {"period": period.as_dict(), **acc[_ALL].as_dict(target_s=target),
              "top_categories": _top_categories(period, through=state["through"])}
    if group_by:
        names = _names(group_by, [k for k in acc if k not in (_ALL, None)])
        groups = [{"id": k, "name": names.get(k, "") if k is not None else "", **figures.as_dict(target_s=target)}
                  for k, figures in acc.items() if k != _ALL]
        groups.sort(key=lambda g: (g["id"] is None, g["name"], g["id"] or 0))
        result["group_by"] = group_by
        result["groups"] = groups
    return result


def _from_rollup(rolled: Period, *, group_by: str | None, since: date, chat: bool, into) -> None:
    """Add the rolled-up days' figures (one aggregate over ``DailyFigure``):
    csat, chat (when ``chat``: waits that began on or after ``since``),
    resolution and remedies. The whole period is the sum of its groups, so one
    grouping's rows feed both."""
    wanted = Q(measure__in=["csat", "resolved", "remedy"])
    if chat:  # a chat row's key is the day its wait began: only waits begun in the period count
        wanted |= Q(measure="chat", key__gte=since.isoformat())
    rows = (DailyFigure.objects.filter(wanted, grouping=group_by or "", day__gte=rolled.first, day__lte=rolled.last)
            # the chat rows' start days add up into one row per group (fewer rows to Python)
            .annotate(bucket=Case(When(measure="chat", then=Value("")), default=F("key")))
            .values("group_id", "measure", "bucket")
            .annotate(n=Sum("count"), total=Sum("total"), extra=Sum("extra")).order_by())
    # thousands of rows per agent report: plain tuples, without the ORM's
    # per-row converters (a third of the report's Python time)
    sql, params = rows.query.sql_with_params()
    with connections[rows.db].cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    for group_id, measure, key, n, total, extra in fetched:
        n, total, extra = int(n), int(total), int(extra)  # PostgreSQL's SUM of bigint is numeric
        for figures in into(group_id):
            if measure == "csat":
                figures.scores[int(key)] += n
            elif measure == "chat":
                figures.chat[0] += n
                figures.chat[1] += total / 1_000_000
                figures.chat[2] += extra
            elif measure == "resolved":
                figures.resolved[key][0] += n
                figures.resolved[key][1] += extra
            else:
                figures.remedies[key][0] += n
                figures.remedies[key][1] += total


def _first_responses(opened, *, key: str | None, into, grouped: bool) -> None:
    """Count, nearest-rank p50/p90 and average of seconds to the first reply,
    for the whole period and per group. On PostgreSQL all in the database
    (``percentile_disc``; with ``group_by`` the whole and the groups in one
    query by GROUPING SETS: percentiles do not add up across groups); SQLite has no percentile aggregate, so there the
    embedded default's small data comes back as one column of seconds."""
    seconds = Seconds(F("first_response_at"), F("created_at"))
    database = connections[opened.db]  # the read alias: the replica's, in the report's transaction
    if database.vendor != "postgresql":
        collected: dict[int, tuple[_Figures, list[float]]] = {}  # by the accumulator's identity
        for group, value in opened.annotate(s=seconds).values_list(key or "id", "s").order_by():
            for figures in into(group):
                collected.setdefault(id(figures), (figures, []))[1].append(value)
        for figures, values in collected.values():
            values.sort()
            figures.first_response.update(count=len(values), p50=percentile(values, 50), p90=percentile(values, 90),
                                          average=round(sum(values) / len(values), 1))
        return

    def stats(row: dict) -> dict:
        return {"count": row["n"], "p50": _float(row["p50"]), "p90": _float(row["p90"]),
                "average": round(float(row["average"]), 1) if row["average"] is not None else None}

    aggregates = {"n": Count("id"), "p50": NearestRank(seconds, p=50), "p90": NearestRank(seconds, p=90),
                  "average": Avg(seconds)}
    if not grouped:
        into(_ALL)[0].first_response.update(stats(opened.aggregate(**aggregates)))
        return
    # the whole period and each group from one scan of the period's tickets:
    # GROUPING SETS, which the ORM does not write (its WHERE is the queryset's own)
    inner, params = opened.annotate(s=seconds).values(key, "s").order_by().query.sql_with_params()
    group = database.ops.quote_name(key)
    with database.cursor() as cursor:
        cursor.execute(
            f"SELECT GROUPING({group}), {group}, COUNT(*), PERCENTILE_DISC(0.5) WITHIN GROUP (ORDER BY s), "
            f"PERCENTILE_DISC(0.9) WITHIN GROUP (ORDER BY s), AVG(s) FROM ({inner}) AS opened "
            f"GROUP BY GROUPING SETS (({group}), ())", params)
        for whole, value, n, p50, p90, average in cursor.fetchall():
            row = {"n": n, "p50": p50, "p90": p90, "average": average}
            (into(_ALL)[0] if whole else into(value)[-1]).first_response.update(stats(row))


def _float(value) -> float | None:
    return None if value is None else float(value)


def _names(group_by: str, ids: list) -> dict:
    if not ids:
        return {}
    if group_by == "queue":
        return dict(Queue.objects.filter(pk__in=ids).values_list("pk", "name"))
    return {pk: display or username for pk, display, username in
            User.objects.filter(pk__in=ids).values_list("pk", "display_name", "username")}


_STATE = object()  # "read the rollup state"


def _top_categories(period: Period, limit: int = TOP_CATEGORIES, *, through=_STATE) -> list[dict]:
    """Categories × regions whose inflow grew most against the previous
    period: the rolled-up days from ``DailyFigure``, the days after them live."""
    if through is _STATE:
        through = rollup_state()["through"]
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])  # (category, region) → [now, before]
    both = Period(first=period.previous.first, last=period.last)
    rolled, live = _split(both, through)
    if rolled:
        for row in (DailyFigure.objects.filter(grouping="", measure="opened", day__gte=rolled.first,
                                               day__lte=rolled.last)
                    .values("key", "key2")
                    .annotate(now=Sum("count", filter=Q(day__gte=period.first)),
                              before=Sum("count", filter=Q(day__lt=period.first)))
                    .order_by()):
            pair = counts[(row["key"], row["key2"])]
            pair[0] += row["now"] or 0
            pair[1] += row["before"] or 0
    if live:
        for row in (Ticket.objects.filter(created_at__gte=live.start, created_at__lt=live.end)
                    .values("category", "order__region")
                    .annotate(now=Count("id", filter=Q(created_at__gte=period.start)),
                              before=Count("id", filter=Q(created_at__lt=period.start)))
                    .order_by()):
            pair = counts[(row["category"], row["order__region"] or "")]
            pair[0] += row["now"]
            pair[1] += row["before"]
    ranked = sorted(((category, region, now, before) for (category, region), (now, before) in counts.items() if now),
                    key=lambda r: (-(r[2] - r[3]), -r[2], r[0], r[1]))
    return [{"category": category, "region": region, "count": now, "previous_count": before,
             "change_pct": change_pct(now, before)}
            for category, region, now, before in ranked[:limit]]


def carriers(*, period: Period) -> list[dict]:
    """Per carrier, the shipments sent in the period: how many, the share
    delivered on or before their ETA (the carrier's ``delivered`` event, local
    date), the shares with a damaged, lost or stuck event, and the ratings of
    tickets about those shipments' orders."""
    with analytic_reads(Ticket):
        return _carriers(period)


def _carriers(period: Period) -> list[dict]:
    rolled, live = _split(period, rollup_state()["through"])
    totals: dict[str, list[int]] = defaultdict(lambda: [0] * 7)  # shipments, on time, damaged, lost, stuck, ratings, sum
    if rolled:
        for row in (DailyFigure.objects.filter(grouping="", measure="carrier", day__gte=rolled.first,
                                               day__lte=rolled.last)
                    .values("key").annotate(n=Sum("count"), on_time=Sum("total"), damaged=Sum("extra"),
                                            lost=Sum("extra2"), stuck=Sum("extra3"), ratings=Sum("ratings"),
                                            rating_sum=Sum("rating_sum")).order_by()):
            line = totals[row["key"]]
            for i, name in enumerate(("n", "on_time", "damaged", "lost", "stuck", "ratings", "rating_sum")):
                line[i] += row[name]
    if live:
        for carrier, figures in _carrier_rows(live.start, live.end).items():
            line = totals[carrier]
            for i, value in enumerate(figures):
                line[i] += value
    result = []
    for carrier in sorted(totals):
        n, on_time, damaged, lost, stuck, ratings, rating_sum = totals[carrier]
        if not n:
            continue
        result.append({
            "carrier": carrier, "shipments": n,
            "on_time_pct": pct(on_time, n), "damaged_pct": pct(damaged, n),
            "lost_pct": pct(lost, n), "stuck_pct": pct(stuck, n),
            "csat_count": ratings,
            "csat_average": round(rating_sum / ratings, 2) if ratings else None,
        })
    return result


def _carrier_rows(start, end) -> dict[str, list[int]]:
    """Per carrier, for the shipments shipped in [start, end): [shipments, on
    time, damaged, lost, stuck, ratings, sum of scores]. The shipments per
    carrier, then from the events' side (one join, where four EXISTS per
    shipment were 230,000 index probes a month) how many of them had each
    kind of event; on time: a delivered event on or before the ETA, local
    date; the ratings of tickets about those shipments' orders."""
    kinds = LogisticsEvent.Kind
    events = {row["shipment__carrier"]: row for row in (
        LogisticsEvent.objects.filter(shipment__shipped_at__gte=start, shipment__shipped_at__lt=end,
                                      kind__in=[kinds.DELIVERED, kinds.DAMAGED, kinds.LOST, kinds.STUCK])
        .values("shipment__carrier")
        .annotate(on_time=Count("shipment_id", distinct=True,
                                filter=Q(kind=kinds.DELIVERED, occurred_at__date__lte=F("shipment__eta"))),
                  **{kind: Count("shipment_id", distinct=True, filter=Q(kind=kind))
                     for kind in ("damaged", "lost", "stuck")})
        .order_by())}
    csat = {row["ticket__order__shipment__carrier"]: row for row in
            Rating.objects.filter(ticket__order__shipment__shipped_at__gte=start,
                                  ticket__order__shipment__shipped_at__lt=end)
            .values("ticket__order__shipment__carrier").annotate(n=Count("id"), total=Sum("score")).order_by()}
    result = {}
    for row in (Shipment.objects.filter(shipped_at__gte=start, shipped_at__lt=end)
                .values("carrier").annotate(n=Count("id")).order_by()):
        seen, rated = events.get(row["carrier"], {}), csat.get(row["carrier"], {})
        result[row["carrier"]] = [row["n"], seen.get("on_time", 0), seen.get("damaged", 0), seen.get("lost", 0),
                                  seen.get("stuck", 0), rated.get("n", 0), rated.get("total") or 0]
    return result


def day_figures(day: date, *, target: int) -> list[DailyFigure]:
    """The ``DailyFigure`` rows of one local day (unsaved): each population
    counted once at (agent, queue) and added up into the whole platform, per
    agent and per queue. The same rules as the live reads above."""
    period = Period(first=day, last=day)
    start, end = period.start, period.end
    cells: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0])  # (grouping, id, measure, key, key2) → count, total, extra

    def add(agent, queue, measure, key, count, total=0, extra=0, *, key2=""):
        for grouping, group_id in (("", None), ("agent", agent), ("queue", queue)):
            cell = cells[(grouping, group_id, measure, str(key), key2)]
            cell[0] += count
            cell[1] += total
            cell[2] += extra

    for row in (Rating.objects.filter(created_at__gte=start, created_at__lt=end)
                .values("ticket__assignee_id", "ticket__queue_id", "score").annotate(n=Count("id")).order_by()):
        if 0 <= row["score"] <= 10:
            add(row["ticket__assignee_id"], row["ticket__queue_id"], "csat", row["score"], row["n"])
    for row in (Message.objects.filter(created_at__gte=start, created_at__lt=end, waited_from__isnull=False)
                .annotate(waited=Seconds(F("created_at"), F("waited_from")),
                          us=Microseconds(F("created_at"), F("waited_from")), since=TruncDate("waited_from"))
                .values("author_id", "ticket__queue_id", "since")
                .annotate(n=Count("id"), total=Sum("us"), over=Count("id", filter=Q(waited__gt=target)))
                .order_by()):
        add(row["author_id"], row["ticket__queue_id"], "chat", row["since"].isoformat(), row["n"],
            int(row["total"] or 0), row["over"])
    for row in (Ticket.objects.filter(resolved_at__gte=start, resolved_at__lt=end)
                .values("assignee_id", "queue_id", "grade").annotate(n=Count("id")).order_by()):
        add(row["assignee_id"], row["queue_id"], "resolved", row["grade"], row["n"], 0, row["n"])
    for row in (SlaBreach.objects.filter(ticket__resolved_at__gte=start, ticket__resolved_at__lt=end)
                .values("ticket__assignee_id", "ticket__queue_id", "ticket__grade")
                .annotate(n=Count("ticket_id", distinct=True)).order_by()):
        add(row["ticket__assignee_id"], row["ticket__queue_id"], "resolved", row["ticket__grade"], 0, 0, -row["n"])
    for row in (Remedy.objects.filter(status=Remedy.Status.EXECUTED, executed_at__gte=start, executed_at__lt=end)
                .values("requested_by_id", "ticket__queue_id", "kind", "with_coupon")
                .annotate(n=Count("id"), amount=Sum("amount_fen"), coupons=Sum("coupon_fen")).order_by()):
        cost = remedy_cost(kind=row["kind"], amount_fen=row["amount"] or 0, with_coupon=row["with_coupon"],
                           coupon_fen=row["coupons"] or 0)
        add(row["requested_by_id"], row["ticket__queue_id"], "remedy", row["kind"], row["n"], cost)
    rows = [DailyFigure(day=day, grouping=grouping, group_id=group_id, measure=measure, key=key, key2=key2,
                        count=count, total=total, extra=extra)
            for (grouping, group_id, measure, key, key2), (count, total, extra) in cells.items()]
    for row in (Ticket.objects.filter(created_at__gte=start, created_at__lt=end)
                .values("category", "order__region").annotate(n=Count("id")).order_by()):
        rows.append(DailyFigure(day=day, measure="opened", key=row["category"], key2=row["order__region"] or "",
                                count=row["n"]))
    for carrier, (n, on_time, damaged, lost, stuck, ratings, rating_sum) in _carrier_rows(start, end).items():
        rows.append(DailyFigure(day=day, measure="carrier", key=carrier, count=n, total=on_time, extra=damaged,
                                extra2=lost, extra3=stuck, ratings=ratings, rating_sum=rating_sum))
    return rows


def days_touched(*, since, before: date) -> set[date]:
    """Closed days (before ``before``) whose figures rows written since
    ``since`` can change although their own time is later: the shipped day of
    shipments with a carrier event received, or a rating given, since then
    (the carriers' figures count by the day shipped), and the day of each
    rating of a ticket that is active again (reopened: its assignee may still
    change)."""
    shipped = set()
    for when in (LogisticsEvent.objects.filter(received_at__gte=since, shipment__isnull=False)
                 .values_list("shipment__shipped_at", flat=True).distinct()):
        shipped.add(when)
    for when in (Rating.objects.filter(created_at__gte=since, ticket__order__shipment__isnull=False)
                 .values_list("ticket__order__shipment__shipped_at", flat=True).distinct()):
        shipped.add(when)
    for when in (Rating.objects.filter(ticket__status__in=Ticket.ACTIVE).values_list("created_at", flat=True)):
        shipped.add(when)
    return {day for day in (timezone.localdate(when) for when in shipped if when) if day < before}


def chat_target_passed(report: dict) -> bool:
    """The console's alert: the period's average chat response is over the target."""
    average = report["chat_response_s"]["average"]
    return average is not None and average > report["chat_response_s"]["target_s"]

