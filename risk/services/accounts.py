"""A supervisor's actions on an account (flag, freeze, dismiss a hit) and the
owner's verification that gives a frozen account back. Every action writes an
``AccountAction`` line in the same transaction as its effect.

Locks: account (user row) → risk hit → verification (``risk/locks.py``, in the global order of ``core/locks.py``).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from compensation.services import get_policy
from risk import rules
from risk.errors import (
    AlreadyFlagged,
    AlreadyFrozen,
    HitClosed,
    HitNotFound,
    InvalidInput,
    NotRestricted,
    VerificationFailed,
    VerificationRequired,
)
from risk.locks import lock_hit, lock_user, lock_verification
from risk.models import AccountAction, OwnerVerification, RiskHit
from risk.services.common import buyer_account, clean_reason, close_open_hits, announce, require_staff, require_supervisor

Status = User.AccountStatus
VERIFICATION_VALID_FOR = timedelta(minutes=30)


@transaction.atomic(durable=True)
def flag_account(*, actor, user_id: int, reason: str, now: datetime | None = None) -> User:
    """Mark a buyer's account suspect: new bookings are denied (``risk_check``)
    and their remedies go to approval (``buyer_flagged``)."""
    require_supervisor(actor)
    reason = clean_reason(reason)
    now = now or timezone.now()
    account = buyer_account(lock_user(user_id))
    if not rules.may_flag(status=account.account_status):
        if account.account_status == Status.FROZEN:
            raise AlreadyFrozen("The account is frozen, which already blocks it.")
        raise AlreadyFlagged()
    return _set_status(account=account, status=Status.FLAGGED, kind=AccountAction.Kind.FLAG, actor=actor,
                       reason=reason, now=now)


@transaction.atomic(durable=True)
def freeze_account(*, actor, user_id: int, reason: str, now: datetime | None = None) -> User:
    """Freeze a buyer's account until the owner verifies the registration details."""
    require_supervisor(actor)
    reason = clean_reason(reason)
    now = now or timezone.now()
    account = buyer_account(lock_user(user_id))
    if not rules.may_freeze(status=account.account_status):
        raise AlreadyFrozen()
    return _set_status(account=account, status=Status.FROZEN, kind=AccountAction.Kind.FREEZE, actor=actor,
                       reason=reason, now=now)


def _set_status(*, account: User, status: str, kind: str, actor, reason: str, now: datetime,
                data: dict | None = None) -> User:
    before = account.account_status
    account.account_status = status
    account.save(update_fields=["account_status"])
    hit = close_open_hits(user_id=account.pk, actor=actor, now=now, note=reason)
    AccountAction.objects.create(user=account, kind=kind, actor=actor, hit=hit, reason=reason, created_at=now,
                                 data={"status": [before, status], **(data or {})})
    announce(account)
    return account


@transaction.atomic(durable=True)
def dismiss_hit(*, actor, hit_id: int, reason: str, now: datetime | None = None) -> RiskHit:
    """A supervisor judges a hit harmless (the owner really did order)."""
    require_supervisor(actor)
    reason = clean_reason(reason)
    now = now or timezone.now()
    user_id = RiskHit.objects.filter(pk=hit_id).values_list("user_id", flat=True).first()
    if user_id is None:
        raise HitNotFound()
    lock_user(user_id)
    hit = lock_hit(hit_id)
    if hit.status != RiskHit.Status.OPEN:
        raise HitClosed()
    hit.status = RiskHit.Status.DISMISSED
    hit.reviewed_by = actor
    hit.reviewed_at = now
    hit.review_note = reason
    hit.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_note"])
    AccountAction.objects.create(user_id=user_id, kind=AccountAction.Kind.DISMISS_HIT, actor=actor, hit=hit,
                                 reason=reason, created_at=now)
    return hit


# --- the owner's verification and the unfreeze ----------------------------------------------


def _digits(phone: str) -> str:
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits


@transaction.atomic(durable=True)
def verify_owner(*, actor, user_id: int, phone: str, email: str = "", id_last4_confirmed: bool = False,
                 note: str = "", now: datetime | None = None) -> OwnerVerification:
    """Record an agent's check of the caller's registration details. Failed
    checks are kept too: a caller who fails again and again is a signal. When
    the compensation policy says so (``freeze_on_failed_verification``, on by
    default) a failed check freezes the account at once, in the same
    transaction (the audit line names the check); the account's cancelled
    bookings then stay cancelled (``merchants.rules.may_restore_for_account``)."""
    require_staff(actor)
    note = clean_reason(note, required=False)
    if not isinstance(id_last4_confirmed, bool):
        raise InvalidInput("id_last4_confirmed is true or false.", field="id_last4_confirmed")
    if not _digits(phone) or len(phone) > 32:
        raise InvalidInput("Give the phone number the caller states.", field="phone")
    if len(email or "") > 254:
        raise InvalidInput("The e-mail is at most 254 characters.", field="email")
    now = now or timezone.now()
    account = buyer_account(lock_user(user_id))
    phone_matched = bool(account.phone) and _digits(phone) == _digits(account.phone)
    email_matched = bool(account.email and email) and email.strip().lower() == account.email.strip().lower()
    passed = phone_matched and (email_matched or id_last4_confirmed)
    check = OwnerVerification.objects.create(
        user=account, checked_by=actor, phone_matched=phone_matched, email_matched=email_matched,
        id_last4_confirmed=id_last4_confirmed, note=note, created_at=now,
        outcome=OwnerVerification.Outcome.PASSED if passed else OwnerVerification.Outcome.FAILED,
    )
    if not passed and get_policy().freeze_on_failed_verification and rules.may_freeze(status=account.account_status):
        _set_status(account=account, status=Status.FROZEN, kind=AccountAction.Kind.FREEZE, actor=actor,
                     reason="owner verification failed", now=now, data={"verification_id": check.pk})
    return check


@transaction.atomic(durable=True)
def unfreeze_account(*, actor, user_id: int, verification_id: int | None, note: str = "",
                     now: datetime | None = None) -> User:
    """Give a frozen (or flagged) account back to its owner, on the strength of
    a passed verification of this account recorded in the last 30 minutes and
    not used before (it is used up here). Without one: 422."""
    require_staff(actor)
    note = clean_reason(note, required=False)
    now = now or timezone.now()
    account = buyer_account(lock_user(user_id))
    if not rules.may_unfreeze(status=account.account_status):
        raise NotRestricted()
    valid_id = isinstance(verification_id, int) and not isinstance(verification_id, bool)
    check = lock_verification(verification_id, account.pk) if valid_id else None
    if check is None:
        raise VerificationRequired()
    if check.outcome != OwnerVerification.Outcome.PASSED:
        raise VerificationFailed(verification_id=check.pk)
    if check.used_at is not None or now - check.created_at > VERIFICATION_VALID_FOR:
        raise VerificationRequired("That verification is used up or too old; check the owner again.")
    check.used_at = now
    check.save(update_fields=["used_at"])
    return _set_status(account=account, status=Status.ACTIVE, kind=AccountAction.Kind.UNFREEZE, actor=actor,
                       reason=note or "owner verified", now=now, data={"verification_id": check.pk})
