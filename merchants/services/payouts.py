"""Payouts: a merchant takes money out of available (never beyond withdrawable,
once per idempotency key), and the bank's answer settles it."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import roles
from core import doors
from core.errors import InvalidInput
from core.idempotency import request_hash, require_idempotency_key
from core.locks import lock
from core.realtime import publish_on_commit
from merchants import rules
from merchants.errors import (
    ExceedsWithdrawable,
    IdempotencyConflict,
    NotFound,
    PayoutAwaitingReview,
    PayoutNotInReview,
    PayoutSettled,
    PermissionDenied,
)
from merchants.escrow import Figures
from merchants.locks import lock_account
from merchants.models import Movement, Payout
from merchants.selectors import get_merchant_for
from merchants.services.credit_policy import get_credit_policy
from merchants.services.money import check_amount, move
from merchants.services.orders import merchant_group


@transaction.atomic(durable=True)
def request_payout(*, actor, merchant_id: int, amount_fen: int, idempotency_key: str,
                   now: datetime | None = None, ip: str | None = None, device: str = "") -> tuple[Payout, bool]:
    """Take ``amount_fen`` out of available at once, never beyond withdrawable.

    Returns ``(payout, created)``; the same key with the same amount replays
    the first payout, with another amount is a 409. The doors' guards (the
    blacklist) see the staff member, the request's ``ip`` and ``device``. A
    merchant whose credit score is below the credit policy's
    ``payout_review_below`` gets a payout ``awaiting_review`` (the money is
    taken out of available all the same, so withdrawable stays exact): a
    supervisor approves it to the bank or rejects it back.
    """
    if not roles.is_merchant_staff(actor):
        raise PermissionDenied("Only the merchant's staff request payouts.")
    merchant = get_merchant_for(user=actor, merchant_id=merchant_id)
    doors.check(door=doors.PAYOUT, user=actor, ip=ip, device=device, now=now)
    check_amount(amount_fen)
    key = require_idempotency_key(idempotency_key)
    digest = request_hash({"amount_fen": amount_fen})
    account = lock_account(merchant_id)  # serialises payouts of this merchant
    existing = Payout.objects.filter(merchant_id=merchant_id, idempotency_key=key).first()
    if existing is not None:
        if existing.request_hash != digest:
            raise IdempotencyConflict()
        return existing, False
    figures = Figures(account.pending_fen, account.available_fen, account.deposit_fen, account.held_fen)
    if amount_fen > figures.withdrawable_fen:
        raise ExceedsWithdrawable(
            f"You can withdraw at most {figures.withdrawable_fen} fen now.", withdrawable_fen=figures.withdrawable_fen
        )
    now = now or timezone.now()
    policy = get_credit_policy()
    reviewed = rules.below(score=merchant.credit_score, threshold=policy.payout_review_below)
    try:
        with transaction.atomic():
            payout = Payout.objects.create(
                merchant_id=merchant_id, amount_fen=amount_fen, requested_by=actor, idempotency_key=key,
                request_hash=digest, created_at=now,
                status=Payout.Status.AWAITING_REVIEW if reviewed else Payout.Status.REQUESTED,
                review_reason={"credit_score": merchant.credit_score, "threshold": policy.payout_review_below}
                if reviewed else {},
            )
    except IntegrityError:
        raise IdempotencyConflict() from None
    move(account, bucket="available", kind=Movement.Kind.PAYOUT, amount_fen=-amount_fen, now=now, payout=payout)
    account.save(update_fields=["available_fen", "updated_at"])
    return payout, True


@transaction.atomic(durable=True)
def settle_payout(*, payout_id: int, paid: bool, reason: str = "", now: datetime | None = None) -> Payout:
    """The bank answered: paid, or failed and the amount returns to available."""
    now = now or timezone.now()
    payout = lock(Payout.objects, "payout").get(pk=payout_id)
    if payout.status == Payout.Status.AWAITING_REVIEW:
        raise PayoutAwaitingReview()  # the bank is never asked before a supervisor approves
    if payout.status != Payout.Status.REQUESTED:
        raise PayoutSettled()
    account = lock_account(payout.merchant_id)
    payout.status = Payout.Status.PAID if paid else Payout.Status.FAILED
    payout.settled_at = now
    payout.failure_reason = "" if paid else (reason or "bank refused")[:255]
    payout.save(update_fields=["status", "settled_at", "failure_reason"])
    if not paid:
        move(account, bucket="available", kind=Movement.Kind.PAYOUT_RETURNED, amount_fen=payout.amount_fen,
              now=now, payout=payout)
        account.save(update_fields=["available_fen", "updated_at"])
    return payout


@transaction.atomic(durable=True)
def review_payout(*, actor, payout_id: int, approve: bool, note: str = "", now: datetime | None = None) -> Payout:
    """A supervisor decides a payout awaiting review: approved, it goes to
    the bank (``requested``); rejected, its amount returns to available.
    Decided once (409 ``payout_not_in_review`` after)."""
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor reviews payouts.")
    note = (note or "").strip()
    if len(note) > 255:
        raise InvalidInput("The note is at most 255 characters.", field="note")
    if not approve and not note:
        raise InvalidInput("Say why the payout is rejected.", field="note")
    now = now or timezone.now()
    payout = lock(Payout.objects, "payout").filter(pk=payout_id).first()
    if payout is None:
        raise NotFound("Payout not found.")
    if payout.status != Payout.Status.AWAITING_REVIEW:
        raise PayoutNotInReview()
    account = lock_account(payout.merchant_id)
    payout.reviewed_by, payout.reviewed_at, payout.review_note = actor, now, note
    if approve:
        payout.status = Payout.Status.REQUESTED
    else:
        payout.status = Payout.Status.REJECTED
        payout.settled_at = now
        move(account, bucket="available", kind=Movement.Kind.PAYOUT_RETURNED, amount_fen=payout.amount_fen,
             now=now, payout=payout, note="rejected on review")
        account.save(update_fields=["available_fen", "updated_at"])
    payout.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_note", "settled_at"])
    publish_on_commit([merchant_group(payout.merchant_id)], {"type": "payout.reviewed", "payout_id": payout.pk,
                                                             "status": payout.status})
    return payout


__all__ = ["request_payout", "review_payout", "settle_payout"]
