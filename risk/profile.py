"""The customer at a glance (issue #13 item 1): one buyer's tickets, orders,
remedies received, CSAT given and account status, for staff.

Why it lives in ``risk``: the profile reads tickets (``tickets``), remedies
and the blacklist (``compensation``) and the detector's hits (``risk``).
Imports point one way (core ← accounts ← merchants ← tickets ← compensation
← risk ← incidents ← cs_portal), so ``risk`` is the lowest app that may
import all three; putting it higher (incidents) would work too but would
hang a buyer read on the incident app for no reason. The console's ticket
page (``tickets``) cannot import it, so ``risk`` serves the panel at its own
URL and the page loads it with htmx, like the risk banner.

A constant number of queries whatever the buyer's history: every list is a
sliced query with its ``select_related``, every figure one aggregate.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Avg, Case, Count, F, IntegerField, Max, Q, Sum, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from accounts.models import User
from compensation.models import BlacklistEntry, Remedy
from merchants.models import Order
from risk.errors import AccountNotFound
from risk.models import RiskHit
from risk.selectors import _staff_only
from tickets.models import Rating, Ticket

RECENT_TICKETS = 10
OPEN_TICKETS = 10
RECENT_ORDERS = 5
RECENT_REMEDIES = 5
RECENT_RATINGS = 10


@dataclass(frozen=True)
class RemedyFigures:
    count: int
    amount_fen: int


@dataclass(frozen=True)
class CsatFigures:
    count: int
    average: float | None
    recent: list = field(default_factory=list)


@dataclass(frozen=True)
class AccountStatus:
    account_status: str
    flagged: bool
    frozen: bool
    open_risk_hits: int
    blacklisted: bool
    blacklisted_until: datetime | None


@dataclass(frozen=True)
class BuyerProfile:
    buyer: User
    open_tickets: list[Ticket]
    recent_tickets: list[Ticket]
    recent_orders: list[Order]
    remedies_this_month: RemedyFigures
    recent_remedies: list[Remedy]
    csat: CsatFigures
    status: AccountStatus
    month_start: datetime


# what a remedy cost the platform (``compensation.rules.remedy_cost``, as a query expression)
_REMEDY_COST = (
    Case(When(kind__in=[Remedy.Kind.REFUND, Remedy.Kind.COUPON], then=F("amount_fen")), default=Value(0),
         output_field=IntegerField())
    + Case(When(with_coupon=True, then=F("coupon_fen")), default=Value(0), output_field=IntegerField())
)


def month_start(now: datetime) -> datetime:
    """Midnight on the first of ``now``'s month, in the platform's time zone."""
    local = timezone.localtime(now)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def buyer_profile(*, user, buyer_id: int, now: datetime | None = None) -> BuyerProfile:
    """The buyer at a glance for staff (403 for anyone else, 404 for an
    unknown id). Ten queries, however long the buyer's history."""
    _staff_only(user)
    now = now or timezone.now()
    buyer = User.objects.filter(pk=buyer_id).first()
    if buyer is None:
        raise AccountNotFound("Buyer not found.")
    tickets = Ticket.objects.filter(buyer_id=buyer.pk).select_related("order", "assignee")
    open_tickets = list(tickets.filter(status__in=Ticket.ACTIVE).order_by("-created_at", "-id")[:OPEN_TICKETS])
    recent_tickets = list(tickets.order_by("-created_at", "-id")[:RECENT_TICKETS])
    recent_orders = list(
        Order.objects.filter(buyer_id=buyer.pk).select_related("merchant").order_by("-placed_at", "-id")[:RECENT_ORDERS]
    )

    start = month_start(now)
    received = Remedy.objects.filter(buyer_id=buyer.pk, status=Remedy.Status.EXECUTED)
    figures = received.filter(executed_at__gte=start).aggregate(
        count=Count("pk"), amount_fen=Coalesce(Sum(_REMEDY_COST), Value(0)),
    )
    recent_remedies = list(received.select_related("requested_by").order_by("-executed_at", "-id")[:RECENT_REMEDIES])

    ratings = Rating.objects.filter(buyer_id=buyer.pk)
    csat = ratings.aggregate(count=Count("pk"), average=Avg("score"))
    recent_ratings = list(ratings.order_by("-created_at", "-id")[:RECENT_RATINGS])

    open_hits = RiskHit.objects.filter(user_id=buyer.pk, status=RiskHit.Status.OPEN).count()
    blacklist = BlacklistEntry.objects.filter(
        Q(kind=BlacklistEntry.Kind.ACCOUNT, value=buyer.username), expires_at__gt=now
    ).aggregate(until=Max("expires_at"))["until"]

    status = AccountStatus(
        account_status=buyer.account_status,
        flagged=buyer.account_status == User.AccountStatus.FLAGGED,
        frozen=buyer.account_status == User.AccountStatus.FROZEN,
        open_risk_hits=open_hits,
        blacklisted=blacklist is not None,
        blacklisted_until=blacklist,
    )
    average = csat["average"]
    return BuyerProfile(
        buyer=buyer, open_tickets=open_tickets, recent_tickets=recent_tickets, recent_orders=recent_orders,
        remedies_this_month=RemedyFigures(count=figures["count"], amount_fen=int(figures["amount_fen"])),
        recent_remedies=recent_remedies,
        csat=CsatFigures(count=csat["count"], average=round(float(average), 1) if average is not None else None,
                         recent=recent_ratings),
        status=status, month_start=start,
    )

