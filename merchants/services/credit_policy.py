"""The credit policy: what a low credit score does, changed by supervisors,
every change audited (``CreditPolicyChange``), in force from the next request."""

from __future__ import annotations

import functools

from django.db import connection, transaction
from django.utils import timezone

from accounts import roles
from core.errors import InvalidInput, PermissionDenied
from core.locks import lock
from core.realtime import publish_on_commit
from core import rows
from core.rows import Columns, column, table
from merchants.models import CreditPolicy, CreditPolicyChange, Merchant

CREDIT_POLICY_FIELDS = ("dispute_hold_below", "payout_review_below", "short_resend_below", "resend_hours",
                        "short_resend_hours")
THRESHOLD_FIELDS = ("dispute_hold_below", "payout_review_below", "short_resend_below")


def get_credit_policy() -> CreditPolicy:
    """The policy in force: its row or, before anyone changed it, the
    defaults, unsaved (a read: it writes nothing)."""
    return CreditPolicy.objects.filter(pk=1).first() or CreditPolicy(pk=1, updated_at=timezone.now())


def score_and_policy(*, merchant_id: int) -> tuple[int | None, CreditPolicy]:
    """The merchant's credit score and the policy in force, in one statement
    (the services that act on the score: a dispute's hold, a resend's
    deadline; both inside their transactions). The score is None for an
    unknown merchant. The statement is written once per process: the ORM's
    five subqueries cost more CPU to build than PostgreSQL spent answering;
    prepared, or carrying the caller's held writes (``rows.cursor``)."""
    with rows.cursor() as cursor:
        cursor.execute(_score_and_policy_sql(connection.vendor), [merchant_id])
        row = cursor.fetchone()
    if row is None:
        return None, get_credit_policy()
    policy = _POLICY.build(row[1:])  # None until a supervisor first changes it: the defaults
    return row[0], policy or CreditPolicy(pk=1)


_POLICY = Columns(CreditPolicy, "p")


@functools.cache
def _score_and_policy_sql(vendor: str) -> str:
    return (f"SELECT {column(Merchant, 'credit_score', 'm')}, {_POLICY.sql()} FROM {table(Merchant)} m "
            f"LEFT JOIN {table(CreditPolicy)} p ON {column(CreditPolicy, 'id', 'p')} = 1 "
            f"WHERE {column(Merchant, 'id', 'm')} = %s")


@transaction.atomic(durable=True)
def update_credit_policy(*, actor, changes: dict, reason: str = "") -> CreditPolicy:
    """A supervisor changes the thresholds (0–101; a score below the
    threshold triggers the rule, 0 turns it off) or the resend deadlines
    (1–720 hours); each change is recorded: who, when, before → after."""
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor changes the credit policy.")
    unknown = set(changes) - set(CREDIT_POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown credit policy fields: {', '.join(sorted(unknown))}.")
    for name, value in changes.items():
        low, high = (0, 101) if name in THRESHOLD_FIELDS else (1, 720)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise InvalidInput(f"{name} is an integer from {low} to {high}.", field=name)
    CreditPolicy.objects.get_or_create(pk=1)  # the first change makes the row, with its defaults, to lock it
    policy = lock(CreditPolicy.objects, "policy").get(pk=1)
    diff = {name: [getattr(policy, name), value] for name, value in changes.items() if getattr(policy, name) != value}
    if not diff:
        return policy
    for name, (_, value) in diff.items():
        setattr(policy, name, value)
    policy.save()
    CreditPolicyChange.objects.create(changed_by=actor, changes=diff, reason=(reason or "")[:255])
    publish_on_commit(["console"], {"type": "credit_policy.changed", "fields": sorted(diff)})
    return policy


__all__ = ["CREDIT_POLICY_FIELDS", "get_credit_policy", "score_and_policy", "update_credit_policy"]
