"""Payouts: a merchant takes money out of available (never beyond withdrawable,
once per idempotency key), and the bank's answer settles it."""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import roles
from core.idempotency import request_hash, require_idempotency_key
from core.locks import lock
from merchants.errors import ExceedsWithdrawable, IdempotencyConflict, PayoutSettled, PermissionDenied
from merchants.escrow import Figures
from merchants.locks import lock_account
from merchants.models import Movement, Payout
from merchants.selectors import get_merchant_for
from merchants.services.money import check_amount, move


@transaction.atomic(durable=True)
def request_payout(*, actor, merchant_id: int, amount_fen: int, idempotency_key: str,
                   now: datetime | None = None) -> tuple[Payout, bool]:
    """Take ``amount_fen`` out of available at once, never beyond withdrawable.

    Returns ``(payout, created)``; the same key with the same amount replays
    the first payout, with another amount is a 409.
    """
    if not roles.is_merchant_staff(actor):
        raise PermissionDenied("Only the merchant's staff request payouts.")
    get_merchant_for(user=actor, merchant_id=merchant_id)
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
    try:
        with transaction.atomic():
            payout = Payout.objects.create(
                merchant_id=merchant_id, amount_fen=amount_fen, requested_by=actor, idempotency_key=key,
                request_hash=digest, created_at=now,
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


__all__ = ["request_payout", "settle_payout"]
