"""Reads of ``compensation``, scoped to the viewer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from accounts import roles
from compensation.models import AgentQuota, BudgetDay, Remedy
from compensation.services import get_policy, period_of
from cs_portal.errors import PermissionDenied


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
