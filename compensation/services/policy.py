"""The compensation policy and the day's breaker: changed by supervisors, audited."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts import roles
from compensation.errors import BudgetStillExhausted, InvalidInput, PermissionDenied
from compensation.locks import lock_budget_day
from compensation.models import BreakerReset, BudgetDay, Policy, PolicyChange
from core.realtime import publish_on_commit
from core.locks import lock, taking
from tickets.events import CONSOLE

POLICY_FIELDS = ("value_cap_fen", "coupon_fen", "coupon_max_fen", "agent_monthly_quota", "buyer_daily_cap",
                 "daily_budget_fen", "blacklist_window_days", "blacklist_entry_days", "blacklist_max_remedies",
                 "blacklist_max_tickets", "blacklist_max_accounts", "freeze_on_failed_verification")
BOOL_FIELDS = ("freeze_on_failed_verification",)
# the counting window and an entry's life: the control plan speaks of 3 or 7 days
DAY_FIELDS = ("blacklist_window_days", "blacklist_entry_days")
# counts, in integer columns: the same bound as the API's (a larger number is a typo, and the column's overflow a 500)
COUNT_FIELDS = ("agent_monthly_quota", "buyer_daily_cap", "blacklist_max_remedies", "blacklist_max_tickets",
                "blacklist_max_accounts")


def get_policy() -> Policy:
    """The policy in force: its row or, before anyone changed it, the defaults,
    unsaved (stamped now: they are in force as of now). A read: pages and GETs
    call it and it writes nothing; ``update_policy`` makes the row."""
    return Policy.objects.filter(pk=1).first() or Policy(pk=1, updated_at=timezone.now())


def period_of(now: datetime) -> str:
    """The quota month of ``now`` (local time), ``YYYY-MM``."""
    return timezone.localtime(now).strftime("%Y-%m")


@transaction.atomic(durable=True)
def reset_breaker(*, actor, reason: str, budget_fen: int | None = None) -> BudgetDay:
    """A supervisor re-arms self-service for today, with a reason (recorded);
    while the spend is at the budget, today's budget must be raised too."""
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor re-arms the breaker.")
    reason = (reason or "").strip()
    if not reason or len(reason) > 255:
        raise InvalidInput("Give a reason (at most 255 characters).", field="reason")
    if budget_fen is not None and (isinstance(budget_fen, bool) or not isinstance(budget_fen, int) or budget_fen < 0):
        raise InvalidInput("budget_fen is a non-negative integer.", field="budget_fen")
    now = timezone.now()
    budget = lock_budget_day(timezone.localdate(now), budget_fen=get_policy().daily_budget_fen)
    if budget_fen is not None:
        budget.budget_fen = budget_fen
    if budget.spent_fen >= budget.budget_fen:
        raise BudgetStillExhausted()
    budget.breaker_open = False
    budget.breaker_opened_at = None
    budget.save(update_fields=["budget_fen", "breaker_open", "breaker_opened_at"])
    BreakerReset.objects.create(budget_day=budget, reset_by=actor, reason=reason, spent_fen=budget.spent_fen, created_at=now)
    publish_on_commit([CONSOLE], {"type": "breaker", "open": False, "date": budget.date.isoformat(),
                                  "spent_fen": budget.spent_fen, "budget_fen": budget.budget_fen})
    return budget


@transaction.atomic(durable=True)
def update_policy(*, actor, changes: dict, reason: str = "") -> Policy:
    """A supervisor changes the caps; every change is recorded (who, when,
    before → after) and applies from the next request on: quotas already in
    use this month and today's budget follow it."""
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor changes the policy.")
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown policy fields: {', '.join(sorted(unknown))}.")
    for name, value in changes.items():
        if name in BOOL_FIELDS:
            if not isinstance(value, bool):
                raise InvalidInput(f"{name} is true or false.", field=name)
        elif isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 10**12:
            raise InvalidInput(f"{name} is a non-negative integer.", field=name)
        elif name in DAY_FIELDS and not 1 <= value <= 365:
            raise InvalidInput(f"{name} is 1–365 days.", field=name)
        elif name in COUNT_FIELDS and value > 10**6:
            raise InvalidInput(f"{name} is at most 1000000.", field=name)
    if changes.get("coupon_fen") == 0:
        raise InvalidInput("coupon_fen is at least 1.", field="coupon_fen")
    Policy.objects.get_or_create(pk=1)  # the first change makes the row, with its defaults, to lock it
    policy = lock(Policy.objects, "policy").get(pk=1)
    diff = {name: [getattr(policy, name), value] for name, value in changes.items() if getattr(policy, name) != value}
    if not diff:
        return policy
    for name, (_, value) in diff.items():
        setattr(policy, name, value)
    if policy.coupon_fen > policy.coupon_max_fen:
        raise InvalidInput("The coupon value cannot be above the largest coupon.", field="coupon_fen")
    policy.save()
    PolicyChange.objects.create(changed_by=actor, changes=diff, reason=(reason or "")[:255])
    if "daily_budget_fen" in diff:
        # today's budget follows the policy at once (a supervisor may still raise today's alone)
        taking("budget_day")
        BudgetDay.objects.filter(date=timezone.localdate()).update(budget_fen=policy.daily_budget_fen)
    publish_on_commit([CONSOLE], {"type": "policy.changed", "fields": sorted(diff)})
    return policy
