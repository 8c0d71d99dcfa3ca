"""Row locks of ``compensation``, in the one global order of ``core/locks.py``.

A remedy takes the agent's quota, the buyer's counter and the day's budget by
conditional updates (``compensation/counters.py``), the budget last of all,
so the one row every remedy shares is held only from its update to the commit.
"""

from __future__ import annotations

from datetime import date

from django.db import transaction

from core.locks import lock
from compensation.models import BudgetDay


def lock_budget_day(day: date, *, budget_fen: int) -> BudgetDay:
    """The day's budget row, locked (a supervisor's reset; never a remedy)."""
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"
    BudgetDay.objects.get_or_create(date=day, defaults={"budget_fen": budget_fen})
    return lock(BudgetDay.objects, "budget_day").get(date=day)
