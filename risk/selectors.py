"""Reads of ``risk``, for staff only (agents read, supervisors act)."""

from __future__ import annotations

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
