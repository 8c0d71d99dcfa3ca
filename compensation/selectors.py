"""Reads of ``compensation``, scoped to the viewer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from accounts import roles
from compensation.models import AgentQuota, BudgetDay, Remedy
from compensation.services import get_policy, period_of
from core.errors import PermissionDenied


@dataclass(frozen=True)
class QuotaView:
    period: str
    limit: int
    used: int

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.used)


def quota_for(*, agent, now: datetime | None = None) -> QuotaView:
    now = now or timezone.now()
    period = period_of(now)
    row = AgentQuota.objects.filter(agent=agent, period=period).first()
    limit = row.limit if row else get_policy().agent_monthly_quota
    return QuotaView(period=period, limit=limit, used=row.used if row else 0)


def budget_today(*, now: datetime | None = None) -> BudgetDay:
    """Today's budget row, or an unsaved one with the policy's budget before the first remedy."""
    today = timezone.localdate(now or timezone.now())
    return BudgetDay.objects.filter(date=today).first() or BudgetDay(date=today, budget_fen=get_policy().daily_budget_fen)


def remedies_visible_to(*, user) -> QuerySet[Remedy]:
    """Staff see remedies; supervisors all, agents the ones they requested."""
    if not roles.is_agent(user):
        raise PermissionDenied("Staff only.")
    remedies = Remedy.objects.select_related("ticket", "buyer", "requested_by", "order")
    return remedies if roles.is_supervisor(user) else remedies.filter(requested_by=user)


def buyer_count_today(*, buyer_id: int, now: datetime | None = None) -> int:
    from compensation.models import BuyerCounter

    row = BuyerCounter.objects.filter(buyer_id=buyer_id, date=timezone.localdate(now or timezone.now())).first()
    return row.count if row else 0


@dataclass(frozen=True)
class RemedyOption:
    """One button of the remedy panel and what clicking it would do."""

    key: str
    kind: str
    with_coupon: bool
    amount_fen: int
    cost_fen: int
    outcome: str  # "self_service", "approval" or "refused"
    reasons: tuple[str, ...] = ()
    refusal: str = ""


@dataclass(frozen=True)
class RemedyPanel:
    options: list[RemedyOption]
    quota: QuotaView
    budget: BudgetDay
    policy: object
    refundable_fen: int
    buyer_count: int


# the panel's buttons: (key, kind, with a coupon)
PANEL_ACTIONS = (
    ("refund", "refund", False),
    ("refund_coupon", "refund", True),
    ("resend", "resend", False),
    ("resend_coupon", "resend", True),
    ("coupon", "coupon", False),
)


def remedy_panel(*, ticket, agent, now: datetime | None = None) -> RemedyPanel:
    """What the agent may do on this ticket before any click: each action's
    outcome (self-service, approval with the reasons, or refused with why)."""
    from compensation.services import approval_reasons, refusal_for

    now = now or timezone.now()
    policy = get_policy()
    quota = quota_for(agent=agent, now=now)
    budget = budget_today(now=now)
    buyer_count = buyer_count_today(buyer_id=ticket.buyer_id, now=now) if ticket.buyer_id else 0
    refundable = ticket.order.refundable_fen if ticket.order_id else 0
    options = []
    for key, kind, with_coupon in PANEL_ACTIONS:
        amount = {"refund": refundable, "coupon": policy.coupon_fen}.get(kind, 0)
        cost = amount if kind != "resend" else 0
        cost += policy.coupon_fen if with_coupon else 0
        refused = refusal_for(ticket=ticket, kind=kind, now=now)
        if refused is not None:
            options.append(RemedyOption(key, kind, with_coupon, amount, cost, "refused", refusal=refused.code))
            continue
        reasons = approval_reasons(policy=policy, ticket=ticket, quota_used=quota.used, quota_limit=quota.limit,
                                   buyer_count=buyer_count, budget=budget, cost_fen=cost)
        options.append(RemedyOption(key, kind, with_coupon, amount, cost,
                                    "approval" if reasons else "self_service", tuple(reasons)))
    return RemedyPanel(options, quota, budget, policy, refundable, buyer_count)


def pending_approvals() -> QuerySet[Remedy]:
    """The supervisor's queue: pending remedies, oldest first."""
    return (
        Remedy.objects.filter(status=Remedy.Status.PENDING_APPROVAL)
        .select_related("ticket", "order", "buyer", "requested_by")
        .order_by("created_at", "id")
    )


def policy_history(*, limit: int = 50) -> list:
    from compensation.models import PolicyChange

    return list(PolicyChange.objects.select_related("changed_by").order_by("-created_at", "-id")[:limit])


def blacklist(*, active_only: bool = False):
    from compensation.models import BlacklistEntry

    entries = BlacklistEntry.objects.select_related("added_by").order_by("-created_at", "-id")
    return entries.filter(expires_at__gt=timezone.now()) if active_only else entries
