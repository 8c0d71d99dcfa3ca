"""core/locks.py: the one lock order, checked."""

import pytest
from django.db import transaction

from core.locks import ORDER, LockOrderViolation, taking


@pytest.mark.django_db(transaction=True)
def test_a_lock_taken_out_of_order_is_refused_and_each_transaction_starts_afresh(settings):
    settings.LOCK_ORDER_CHECKS = True
    with transaction.atomic():
        taking("ticket")
        taking("order")
        taking("order")  # the same kind again (its rows in pk order) is fine
        with pytest.raises(LockOrderViolation) as wrong:
            taking("agent_profile")
        assert "agent_profile locked after order" in str(wrong.value)
    with transaction.atomic():  # a new transaction holds nothing yet
        taking("agent_profile")
        taking("budget_day")


@pytest.mark.django_db(transaction=True)
def test_without_checks_nothing_is_refused(settings):
    settings.LOCK_ORDER_CHECKS = False
    with transaction.atomic():
        taking("budget_day")
        taking("account")


def test_the_day_s_budget_is_the_last_lock_of_all():
    assert ORDER[-1] == "budget_day" and len(set(ORDER)) == len(ORDER)


def test_a_lock_outside_a_transaction_is_a_mistake():
    with pytest.raises(AssertionError):
        taking("ticket")
