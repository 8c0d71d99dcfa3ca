"""The one global order of row locks, written once and checked.

Every service that locks more than one kind of row takes them in this order,
each kind's rows in primary-key order, so two transactions never wait on each
other in a circle (PostgreSQL would break the circle by killing one of them):

    account → owner verification → risk hit → incident → bulk job → failed
    coupon → affected buyer → shipment → ticket → remedy → overtime request → agent profile → agent quota
    → buyer counter → order → ledger chain head → variant stock → resend task → fund hold → payout
    → merchant account → policy → day's budget

The day's budget comes last on purpose: every remedy on the platform spends
it, so it is taken by the last statement before commit and held for no more.
A merchant's account comes just before it, after the ledger chain's head:
every payment and refund of that merchant meets on the row, so a remedy that
refunds from escrow writes it (by difference, unread) after its ledger.

Locks go through ``lock(queryset, kind)`` (a ``select_for_update`` that
knows its kind) or ``taking(kind)`` for a lock that a conditional
``UPDATE``/``INSERT … ON CONFLICT`` takes. When ``LOCK_ORDER_CHECKS`` is on
(the developer settings and the whole test suite), taking a kind after a
kind that comes later in the order raises ``LockOrderViolation``; so the
suite fails on a new path that would deadlock. A ``skip_locked`` lock never
waits, so it cannot close a circle and is not checked.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection as default_connection
from django.db import transaction

ORDER = (
    "account", "owner_verification", "risk_hit", "incident", "bulk_job", "coupon_failure", "affected_buyer", "shipment",
    "ticket", "remedy",
    "overtime_request", "agent_profile", "agent_quota", "buyer_counter", "order", "ledger_head", "variant_stock",
    "resend_task", "fund_hold", "payout", "merchant_account", "policy", "budget_day",
)
_RANK = {kind: rank for rank, kind in enumerate(ORDER)}
_STATE = "_cs_locks_held"


class LockOrderViolation(AssertionError):
    pass


def _transaction_key(connection):
    """What identifies the service's transaction: its savepoint when it runs
    inside a test's wrapping transaction, else a marker callback registered on
    commit (Django drops it when the transaction commits or rolls back, and a
    decorator's ``Atomic`` object is the same for every call, so it cannot serve)."""
    blocks = connection.atomic_blocks
    index = next((i for i, block in enumerate(blocks) if not getattr(block, "_from_testcase", False)), None)
    if index is None:
        return None
    if index > 0:
        return ("savepoint", connection.savepoint_ids[index - 1])
    marker = connection.__dict__.get("_cs_lock_marker")
    if marker is None or not any(entry[1] is marker for entry in connection.run_on_commit):
        def marker() -> None:  # runs on commit; only its presence matters
            return None

        connection.on_commit(marker)
        connection.__dict__["_cs_lock_marker"] = marker
    return ("transaction", id(marker))


def _held(connection) -> list[str]:
    """The kinds this connection's current (service) transaction holds."""
    key = _transaction_key(connection)
    state = connection.__dict__.get(_STATE)
    if state is None or state[0] != key:
        state = (key, [])
        connection.__dict__[_STATE] = state
    return state[1]


def taking(kind: str, *, connection=None) -> None:
    """Record that this transaction now locks rows of ``kind``; with
    ``LOCK_ORDER_CHECKS`` refuse a kind that comes before one already held."""
    connection = connection or default_connection
    assert connection.in_atomic_block, f"a {kind} lock is taken inside a transaction"
    rank = _RANK[kind]
    if not getattr(settings, "LOCK_ORDER_CHECKS", False):
        return  # production: nothing reads what is held, and finding the transaction costs a remedy ~0.2 ms
    held = _held(connection)
    later = [k for k in held if _RANK[k] > rank]
    if later:
        raise LockOrderViolation(f"{kind} locked after {', '.join(later)}: the order is {' → '.join(ORDER)}")
    if kind not in held:
        held.append(kind)


def lock(queryset, kind: str, *, skip_locked: bool = False, of: tuple[str, ...] = ()):
    """``queryset.select_for_update(...)``, in the global order."""
    if not skip_locked:
        taking(kind)
    else:
        assert transaction.get_connection().in_atomic_block, f"a {kind} lock is taken inside a transaction"
    return queryset.select_for_update(skip_locked=skip_locked, of=of)
