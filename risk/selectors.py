"""Reads of ``risk``, for staff only (agents read, supervisors act)."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet

from accounts import roles
from accounts.models import User
from core.errors import PermissionDenied
from merchants.models import Order
from risk import rules
from risk.errors import AccountNotFound
from risk.models import AccountAction, OwnerVerification, RiskHit

ROWS_SHOWN = 200


def _staff_only(user) -> None:
    if not roles.is_agent(user):
        raise PermissionDenied("Staff only.")


def hits_visible_to(*, user) -> QuerySet[RiskHit]:
    """The review list, newest first; staff only (a 403 for everyone else)."""
    _staff_only(user)
    return RiskHit.objects.select_related("user", "reviewed_by").order_by("-detected_at", "-id")


def filter_hits(hits: QuerySet[RiskHit], *, status: str = "", account_status: str = "", q: str = "") -> QuerySet[RiskHit]:
    """``status`` of the hit (``all`` for every one), the account's status, and a
    username or display-name search."""
    if status and status != "all":
        hits = hits.filter(status=status)
    if account_status:
        hits = hits.filter(user__account_status=account_status)
    if q:
        hits = hits.filter(Q(user__username__icontains=q) | Q(user__display_name__icontains=q))
    return hits


def restricted_accounts(*, user) -> QuerySet[User]:
    """Flagged and frozen buyer accounts, most recently restricted first."""
    _staff_only(user)
    return (User.objects.filter(account_status__in=[User.AccountStatus.FLAGGED, User.AccountStatus.FROZEN])
            .order_by("-pk"))


def get_account_for(*, user, account_id: int) -> User:
    _staff_only(user)
    account = User.objects.filter(pk=account_id).first()
    if account is None:
        raise AccountNotFound()
    return account


def pending_counts(*, account_ids: list[int]) -> dict[int, int]:
    """Paid, unshipped orders per account (one query for a whole page)."""
    rows = (Order.objects.filter(buyer_id__in=account_ids, status=Order.Status.PAID)
            .values("buyer_id").annotate(n=Count("id")).values_list("buyer_id", "n"))
    return dict(rows)


def recent_actions(*, account: User, limit: int = 10) -> list[AccountAction]:
    return list(AccountAction.objects.filter(user=account).select_related("actor").order_by("-created_at", "-id")[:limit])


def recent_verifications(*, account: User, limit: int = 5) -> list[OwnerVerification]:
    return list(OwnerVerification.objects.filter(user=account).select_related("checked_by")
                .order_by("-created_at", "-id")[:limit])


def pending_orders_of(*, user_id: int) -> list[Order]:
    """The account's paid, unshipped orders: what a bulk cancel would cancel."""
    return list(Order.objects.filter(buyer_id=user_id, status=Order.Status.PAID).select_related("merchant")
                .order_by("placed_at", "pk")[:rules.MAX_BULK_ORDERS])


@dataclass(frozen=True)
class TicketRisk:
    """What the ticket's console page shows about its buyer's account."""

    ticket: object
    account: User | None
    open_hit: RiskHit | None
    warn: bool
    prepared_reply: str


def ticket_risk_for(*, user, ticket_id: int) -> TicketRisk:
    """The risk banner of a ticket (staff; a ticket they may not see is a
    404): the buyer's account status, the detector's open hit, and the
    prepared reply in the ticket's language. Two queries after the ticket."""
    from django.utils import translation

    from tickets.selectors import get_ticket_for

    _staff_only(user)
    ticket = get_ticket_for(user=user, ticket_id=ticket_id)
    account = ticket.buyer if ticket.buyer_id else None
    hit = (RiskHit.objects.filter(user_id=account.pk, status=RiskHit.Status.OPEN).order_by("-detected_at").first()
           if account is not None else None)
    warn = account is not None and rules.shows_risk_warning(account_status=account.account_status,
                                                           open_hit=hit is not None)
    with translation.override(ticket.language or "zh-hans"):
        reply = str(rules.PREPARED_REPLY)
    return TicketRisk(ticket=ticket, account=account, open_hit=hit, warn=warn, prepared_reply=reply)
