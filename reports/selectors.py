"""The reports' reads: every figure from the database in a fixed number of
queries whatever the number of rows, read inside ``replica_reads()`` (they may
lag the primary by the replica's delay, like the dashboard).

Who counts where, for a period of whole local days (``rules.Period``):

- ``csat``: the ratings given in the period (a ticket's ``Rating``), 0–10.
- ``first_response_s``: tickets opened in the period that have a first agent
  reply, seconds from opening to that reply.
- ``chat_response_s``: in chat tickets, each stretch of buyer messages and the
  agent reply that ends it (both in the period), seconds from the first buyer
  message of the stretch to the reply; ``over_target_pct`` against
  ``settings.CHAT_RESPONSE_TARGET_S``.
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
from django.db.models import Avg, Count, Exists, OuterRef, Q, Sum

from accounts.models import User
from compensation.models import Remedy
from compensation.rules import remedy_cost
from core.db_router import replica_reads
from incidents.models import LogisticsEvent
from merchants.models import Shipment
from reports.rules import Period, change_pct, pct, percentile
from tickets import sla
from tickets.models import Channel, Message, Queue, Rating, SlaBreach, Ticket

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
    first_response: list[float] = field(default_factory=list)
    chat: list[float] = field(default_factory=list)
    resolved: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # grade → [n, ok]
    remedies: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0]))  # kind → [n, fen]

    def as_dict(self, *, target_s: int) -> dict:
        count = sum(self.scores)
        total = sum(score * n for score, n in enumerate(self.scores))
        first = sorted(self.first_response)
        chat = self.chat
        return {
            "csat": {
                "count": count,
                "average": round(total / count, 2) if count else None,
                "distribution": list(self.scores),
                "promoters_pct": pct(self.scores[9] + self.scores[10], count),
                "detractors_pct": pct(sum(self.scores[:7]), count),
            },
            "first_response_s": {
                "count": len(first),
                "p50": percentile(first, 50),
                "p90": percentile(first, 90),
                "average": round(sum(first) / len(first), 1) if first else None,
            },
            "chat_response_s": {
                "count": len(chat),
                "average": round(sum(chat) / len(chat), 1) if chat else None,
                "target_s": target_s,
                "over_target_pct": pct(sum(1 for s in chat if s > target_s), len(chat)),
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

    # first response: seconds per ticket (percentiles need the values)
    key = keys.get("ticket")
    opened = Ticket.objects.filter(created_at__gte=period.start, created_at__lt=period.end,
                                   first_response_at__isnull=False)
    for group, opened_at, answered_at in opened.values_list(key or "id", "created_at", "first_response_at").order_by():
        for figures in into(group):
            figures.first_response.append((answered_at - opened_at).total_seconds())

    # chat: walk the period's buyer and agent messages of chat tickets in order
    messages = (Message.objects.filter(ticket__channel=Channel.CHAT, internal=False,
                                       author_role__in=[Message.AuthorRole.BUYER, Message.AuthorRole.AGENT],
                                       created_at__gte=period.start, created_at__lt=period.end)
                .order_by("ticket_id", "seq")
                .values_list("ticket_id", "author_role", "author_id", "ticket__queue_id", "created_at"))
    current, waiting_since = None, None
    for ticket_id, role, author_id, queue_id, created_at in messages.iterator(chunk_size=5000):
        if ticket_id != current:
            current, waiting_since = ticket_id, None
        if role == Message.AuthorRole.BUYER:
            waiting_since = waiting_since or created_at
        elif waiting_since is not None:
            for figures in into(author_id if group_by == "agent" else queue_id):
                figures.chat.append((created_at - waiting_since).total_seconds())
            waiting_since = None

    # resolution by grade: (group, grade) → resolved, of them never breached
    breached = SlaBreach.objects.filter(ticket_id=OuterRef("pk"))
    resolved = (Ticket.objects.filter(resolved_at__gte=period.start, resolved_at__lt=period.end)
                .values(*([key] if key else []), "grade")
                .annotate(n=Count("id"), ok=Count("id", filter=~Exists(breached))).order_by())
    for row in resolved:
        for figures in into(row.get(key)):
            figures.resolved[row["grade"]][0] += row["n"]
            figures.resolved[row["grade"]][1] += row["ok"]

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

    target = target_s()
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
    def had(kind: str, **extra):
        return Exists(LogisticsEvent.objects.filter(shipment_id=OuterRef("pk"), kind=kind, **extra))

    shipped = (Shipment.objects.filter(shipped_at__gte=period.start, shipped_at__lt=period.end)
               .values("carrier")
               .annotate(n=Count("id"),
                         on_time=Count("id", filter=had(LogisticsEvent.Kind.DELIVERED,
                                                        occurred_at__date__lte=OuterRef("eta"))),
                         damaged=Count("id", filter=had(LogisticsEvent.Kind.DAMAGED)),
                         lost=Count("id", filter=had(LogisticsEvent.Kind.LOST)),
                         stuck=Count("id", filter=had(LogisticsEvent.Kind.STUCK)))
               .order_by("carrier"))
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

