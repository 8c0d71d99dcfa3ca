"""The reports' reads: every figure an aggregate in the database (no row
comes back to Python but on SQLite's percentiles), in a fixed number of
queries whatever the number of rows, read inside ``replica_reads()`` (they may
lag the primary by the replica's delay, like the dashboard).

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

from django.conf import settings
from django.db import connection
from django.db.models import Aggregate, Avg, Count, F, FloatField, Func, Q, Sum

from accounts.models import User
from compensation.models import Remedy
from compensation.rules import remedy_cost
from core.db_router import replica_reads
from incidents.models import LogisticsEvent
from merchants.models import Shipment
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
    with replica_reads():
        return _summary(period=period, group_by=group_by)


def _summary(*, period: Period, group_by: str | None) -> dict:
    keys = _KEYS.get(group_by or "", {})
    acc: dict[object, _Figures] = defaultdict(_Figures)

    def into(key) -> list[_Figures]:
        return [acc[_ALL], acc[key]] if group_by else [acc[_ALL]]

    # csat: one row per (group, score)
    ratings = Rating.objects.filter(created_at__gte=period.start, created_at__lt=period.end)
    key = keys.get("rating")
    for row in ratings.values(*([key] if key else []), "score").annotate(n=Count("id")).order_by():
        for figures in into(row.get(key)):
            if 0 <= row["score"] <= 10:
                figures.scores[row["score"]] += row["n"]

    # first response: seconds per ticket, aggregated where the tickets are
    key = keys.get("ticket")
    opened = Ticket.objects.filter(created_at__gte=period.start, created_at__lt=period.end,
                                   first_response_at__isnull=False)
    _first_responses(opened, key=key, into=into, grouped=bool(group_by))

    # chat: each agent reply that ended a buyer's wait keeps when the wait
    # began (``Message.waited_from``, stored by the write paths), so a reply
    # counts when it and the wait's first buyer message are in the period
    replies = (Message.objects.filter(created_at__gte=period.start, created_at__lt=period.end,
                                      waited_from__gte=period.start)
               .annotate(waited=Seconds(F("created_at"), F("waited_from"))))
    key = {"agent": "author_id", "queue": "ticket__queue_id"}.get(group_by or "")
    target = target_s()
    sums = {"n": Count("id"), "total": Sum("waited"), "over": Count("id", filter=Q(waited__gt=target))}
    # (``values()`` of no field would group by every column: the whole period is one aggregate)
    for row in replies.values(key).annotate(**sums).order_by() if key else [replies.aggregate(**sums)]:
        for figures in into(row.get(key)):
            figures.chat[0] += row["n"]
            figures.chat[1] += float(row["total"] or 0)
            figures.chat[2] += row["over"]

    # resolution by grade: (group, grade) → resolved, and of them those with a
    # breach, counted from the breaches' side (a join, where a NOT EXISTS per
    # resolved ticket was a subplan run 60,000 times a month)
    key = keys.get("ticket")
    resolved = Ticket.objects.filter(resolved_at__gte=period.start, resolved_at__lt=period.end)
    for row in resolved.values(*([key] if key else []), "grade").annotate(n=Count("id")).order_by():
        for figures in into(row.get(key)):
            figures.resolved[row["grade"]][0] += row["n"]
            figures.resolved[row["grade"]][1] += row["n"]
    ticket_key = f"ticket__{key}" if key else None
    for row in (SlaBreach.objects.filter(ticket__resolved_at__gte=period.start, ticket__resolved_at__lt=period.end)
                .values(*([ticket_key] if ticket_key else []), "ticket__grade")
                .annotate(n=Count("ticket_id", distinct=True)).order_by()):
        for figures in into(row.get(ticket_key)):
            figures.resolved[row["ticket__grade"]][1] -= row["n"]

    # remedies executed, by kind; their cost is linear in the sums
    key = keys.get("remedy")
    remedies = (Remedy.objects.filter(status=Remedy.Status.EXECUTED, executed_at__gte=period.start,
                                      executed_at__lt=period.end)
                .values(*([key] if key else []), "kind", "with_coupon")
                .annotate(n=Count("id"), amount=Sum("amount_fen"), coupons=Sum("coupon_fen")).order_by())
    for row in remedies:
        cost = remedy_cost(kind=row["kind"], amount_fen=row["amount"] or 0, with_coupon=row["with_coupon"],
                           coupon_fen=row["coupons"] or 0)
        for figures in into(row.get(key)):
            figures.remedies[row["kind"]][0] += row["n"]
            figures.remedies[row["kind"]][1] += cost

    result = {"period": period.as_dict(), **acc[_ALL].as_dict(target_s=target),
              "top_categories": _top_categories(period)}
    if group_by:
        names = _names(group_by, [k for k in acc if k not in (_ALL, None)])
        groups = [{"id": k, "name": names.get(k, "") if k is not None else "", **figures.as_dict(target_s=target)}
                  for k, figures in acc.items() if k != _ALL]
        groups.sort(key=lambda g: (g["id"] is None, g["name"], g["id"] or 0))
        result["group_by"] = group_by
        result["groups"] = groups
    return result


def _first_responses(opened, *, key: str | None, into, grouped: bool) -> None:
    """Count, nearest-rank p50/p90 and average of seconds to the first reply,
    for the whole period and per group. On PostgreSQL all in the database
    (``percentile_disc``; one more query with ``group_by``: percentiles do not
    add up across groups); SQLite has no percentile aggregate, so there the
    embedded default's small data comes back as one column of seconds."""
    seconds = Seconds(F("first_response_at"), F("created_at"))
    if connection.vendor != "postgresql":
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
    into(_ALL)[0].first_response.update(stats(opened.aggregate(**aggregates)))
    if grouped:
        for row in opened.values(key).annotate(**aggregates).order_by():
            into(row[key])[-1].first_response.update(stats(row))


def _float(value) -> float | None:
    return None if value is None else float(value)


def _names(group_by: str, ids: list) -> dict:
    if not ids:
        return {}
    if group_by == "queue":
        return dict(Queue.objects.filter(pk__in=ids).values_list("pk", "name"))
    return {pk: display or username for pk, display, username in
            User.objects.filter(pk__in=ids).values_list("pk", "display_name", "username")}


def _top_categories(period: Period, limit: int = TOP_CATEGORIES) -> list[dict]:
    """Categories × regions whose inflow grew most against the previous period."""
    rows = (Ticket.objects.filter(created_at__gte=period.previous.start, created_at__lt=period.end)
            .values("category", "order__region")
            .annotate(now=Count("id", filter=Q(created_at__gte=period.start)),
                      before=Count("id", filter=Q(created_at__lt=period.start)))
            .order_by())
    ranked = sorted((row for row in rows if row["now"]),
                    key=lambda r: (-(r["now"] - r["before"]), -r["now"], r["category"], r["order__region"] or ""))
    return [{"category": row["category"], "region": row["order__region"] or "", "count": row["now"],
             "previous_count": row["before"], "change_pct": change_pct(row["now"], row["before"])}
            for row in ranked[:limit]]


def carriers(*, period: Period) -> list[dict]:
    """Per carrier, the shipments sent in the period: how many, the share
    delivered on or before their ETA (the carrier's ``delivered`` event, local
    date), the shares with a damaged, lost or stuck event, and the ratings of
    tickets about those shipments' orders."""
    with replica_reads():
        return _carriers(period)


def _carriers(period: Period) -> list[dict]:
    # the shipments per carrier, then from the events' side (one join, where
    # four EXISTS per shipment were 230,000 index probes a month) how many of
    # them had each kind of event; on time: a delivered event on or before the
    # ETA, local date
    shipments = Shipment.objects.filter(shipped_at__gte=period.start, shipped_at__lt=period.end)
    kinds = LogisticsEvent.Kind
    events = {row["shipment__carrier"]: row for row in (
        LogisticsEvent.objects.filter(shipment__shipped_at__gte=period.start, shipment__shipped_at__lt=period.end,
                                      kind__in=[kinds.DELIVERED, kinds.DAMAGED, kinds.LOST, kinds.STUCK])
        .values("shipment__carrier")
        .annotate(on_time=Count("shipment_id", distinct=True,
                                filter=Q(kind=kinds.DELIVERED, occurred_at__date__lte=F("shipment__eta"))),
                  **{kind: Count("shipment_id", distinct=True, filter=Q(kind=kind))
                     for kind in ("damaged", "lost", "stuck")})
        .order_by())}
    shipped = [{**{"on_time": 0, "damaged": 0, "lost": 0, "stuck": 0}, **events.get(row["carrier"], {}), **row}
               for row in shipments.values("carrier").annotate(n=Count("id")).order_by("carrier")]
    csat = {row["ticket__order__shipment__carrier"]: row for row in
            Rating.objects.filter(ticket__order__shipment__shipped_at__gte=period.start,
                                  ticket__order__shipment__shipped_at__lt=period.end)
            .values("ticket__order__shipment__carrier").annotate(n=Count("id"), average=Avg("score")).order_by()}
    result = []
    for row in shipped:
        rated = csat.get(row["carrier"], {})
        result.append({
            "carrier": row["carrier"], "shipments": row["n"],
            "on_time_pct": pct(row["on_time"], row["n"]), "damaged_pct": pct(row["damaged"], row["n"]),
            "lost_pct": pct(row["lost"], row["n"]), "stuck_pct": pct(row["stuck"], row["n"]),
            "csat_count": rated.get("n", 0),
            "csat_average": round(rated["average"], 2) if rated.get("average") is not None else None,
        })
    return result


def chat_target_passed(report: dict) -> bool:
    """The console's alert: the period's average chat response is over the target."""
    average = report["chat_response_s"]["average"]
    return average is not None and average > report["chat_response_s"]["target_s"]

