"""Reads of ``compensation``, scoped to the viewer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from accounts import roles
from compensation import rules
from compensation.models import AgentQuota, BudgetDay, Remedy
from compensation.services.policy import get_policy, period_of
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
    """The agent's month: the limit is the policy's quota in force now."""
    now = now or timezone.now()
    period = period_of(now)
    used = AgentQuota.objects.filter(agent=agent, period=period).values_list("used", flat=True).first() or 0
    return QuotaView(period=period, limit=get_policy().agent_monthly_quota, used=used)


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
    outcome (self-service, approval with the reasons, or refused with why),
    decided by the same rules and the same one-query read of the caps as
    ``apply_remedy``."""
    from compensation.services.remedies import policy_caps, refusal_for

    now = now or timezone.now()
    caps = policy_caps(actor=agent, ticket=ticket, now=now)
    quota = QuotaView(period=period_of(now), limit=caps.agent_monthly_quota, used=caps.quota_used)
    budget = BudgetDay(date=timezone.localdate(now), budget_fen=caps.budget_fen, spent_fen=caps.spent_fen,
                       breaker_open=caps.breaker_open)
    refundable = ticket.order.refundable_fen if ticket.order_id else 0
    buyer_active = ticket.buyer_id is not None and ticket.buyer.account_status == ticket.buyer.AccountStatus.ACTIVE
    options = []
    for key, kind, with_coupon in PANEL_ACTIONS:
        amount = {"refund": refundable, "coupon": caps.coupon_fen}.get(kind, 0)
        coupon_fen = caps.coupon_fen if with_coupon else 0
        cost = rules.remedy_cost(kind=kind, amount_fen=amount, with_coupon=with_coupon, coupon_fen=coupon_fen)
        refused = refusal_for(ticket=ticket, kind=kind, caps=caps)
        if refused is not None:
            options.append(RemedyOption(key, kind, with_coupon, amount, cost, "refused", refusal=refused.code))
            continue
        reasons = rules.approval_reasons(
            caps=caps, kind=kind, amount_fen=amount, cost_fen=cost,
            order_amount_fen=ticket.order.amount_fen if ticket.order_id else None, buyer_active=buyer_active)
        options.append(RemedyOption(key, kind, with_coupon, amount, cost,
                                    "approval" if reasons else "self_service", tuple(reasons)))
    return RemedyPanel(options, quota, budget, caps, refundable, caps.buyer_count)


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
