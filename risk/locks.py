"""Row locks of ``risk``, first in the one global order of ``core/locks.py``:
account (the user row) → owner verification → risk hit.

Risk services never hold them while cancelling or restoring orders: each
order goes through ``merchants.services`` in its own transaction (order →
merchant account), so a risk lock never waits behind a money lock.
"""

from __future__ import annotations

from django.db import transaction

from core.locks import lock
from accounts.models import User
from risk.models import OwnerVerification, RiskHit


def _in_transaction() -> None:
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"


def lock_user(user_id: int) -> User | None:
    _in_transaction()
    return lock(User.objects, "account").filter(pk=user_id).first()


def lock_open_hits(user_id: int) -> list[RiskHit]:
    _in_transaction()
    return list(lock(RiskHit.objects, "risk_hit").filter(user_id=user_id, status=RiskHit.Status.OPEN).order_by("pk"))


def lock_hit(hit_id: int) -> RiskHit | None:
    _in_transaction()
    return lock(RiskHit.objects, "risk_hit").filter(pk=hit_id).first()


def lock_verification(verification_id: int, user_id: int) -> OwnerVerification | None:
    _in_transaction()
    return lock(OwnerVerification.objects, "owner_verification").filter(pk=verification_id, user_id=user_id).first()
