"""Row locks of ``compensation``: the first three of the global order
(``tickets/locks.py``): budget day → agent quota → buyer counter → ticket →
remedy → … → merchant account → ledger head (last)."""

from __future__ import annotations

from datetime import date

from django.db import transaction

from compensation.models import AgentQuota, BudgetDay, BuyerCounter, LedgerHead


def _in_transaction() -> None:
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"


def lock_budget_day(day: date, *, budget_fen: int) -> BudgetDay:
    _in_transaction()
    BudgetDay.objects.get_or_create(date=day, defaults={"budget_fen": budget_fen})
    return BudgetDay.objects.select_for_update().get(date=day)


def lock_agent_quota(agent_id: int, period: str, *, limit: int) -> AgentQuota:
    _in_transaction()
    AgentQuota.objects.get_or_create(agent_id=agent_id, period=period, defaults={"limit": limit})
    return AgentQuota.objects.select_for_update().get(agent_id=agent_id, period=period)


def lock_buyer_counter(buyer_id: int, day: date) -> BuyerCounter:
    _in_transaction()
    BuyerCounter.objects.get_or_create(buyer_id=buyer_id, date=day)
    return BuyerCounter.objects.select_for_update().get(buyer_id=buyer_id, date=day)


def lock_ledger_head() -> LedgerHead:
    _in_transaction()
    LedgerHead.objects.get_or_create(pk=1)
    return LedgerHead.objects.select_for_update().get(pk=1)
