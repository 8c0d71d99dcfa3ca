"""Merchants' money: escrow (paid, released on receipt or after the auto-confirm
days), the deposit, dispute holds and refunds.

Each public function owns its transaction; ``_``-prefixed helpers and the
functions that assert a caller's transaction run inside it (``tickets`` calls
``place_dispute_hold`` and ``settle_dispute`` inside its own ticket transaction,
after the ticket lock, as the global lock order wants; remedies call
``lock_refundable``, ``refund_order`` and ``convert_hold_to_refund``). ``check_amount`` and ``move``
are the two primitives every money write of the package uses.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts import roles
from core.locks import lock, taking
from core import rows
from core.rows import Columns, column, insert, table, update
from merchants.errors import (
    AmountInvalid,
    ExceedsWithdrawable,
    HoldNotActive,
    NotFound,
    OrderDisputed,
    OrderNotReleasable,
    PermissionDenied,
)
from merchants.locks import lock_account
from merchants import rules
from merchants.models import FundHold, MerchantAccount, Movement, Order
from merchants.selectors import get_merchant_for

MAX_FEN = 10**13  # ¥100 billion: anything larger is a typo, not a payout


def check_amount(amount_fen) -> int:
    """A positive integer amount of fen, at most ``MAX_FEN``."""
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or not 0 < amount_fen <= MAX_FEN:
        raise AmountInvalid()
    return amount_fen


def move(account: MerchantAccount, *, bucket: str, kind: str, amount_fen: int, now: datetime, **links) -> Movement:
    """Add ``amount_fen`` (negative takes) to one bucket of the locked account and
    record the movement; the caller saves the account."""
    field = {"pending": "pending_fen", "available": "available_fen", "deposit": "deposit_fen"}[bucket]
    setattr(account, field, getattr(account, field) + amount_fen)
    movement = Movement(merchant_id=account.merchant_id, bucket=bucket, kind=kind, amount_fen=amount_fen,
                        created_at=now, **links)
    insert(movement)
    return movement


# --- escrow -------------------------------------------------------------------


def add_to_escrow(*, merchant_id: int, kind: str, amount_fen: int, now: datetime, **links) -> Movement:
    """Add ``amount_fen`` (negative takes) to the merchant's pending bucket
    and record the movement, without reading the account: one ``UPDATE`` by
    difference, whose row lock lasts to the commit. Every paid order and every
    refund from escrow of a merchant meets on that row, so a caller writes it
    as late in its transaction as it can. The caller bounds the amount (a
    refund by the locked order's refundable rest); the pending bucket's check
    constraint stays the last word."""
    assert transaction.get_connection().in_atomic_block, "runs inside the caller's transaction"
    movement = Movement(merchant_id=merchant_id, bucket="pending", kind=kind, amount_fen=amount_fen, created_at=now,
                        **links)
    insert(movement)
    taking("merchant_account")
    if not _add_to_pending(merchant_id, amount_fen, now):
        lock_account(merchant_id)  # the merchant's first money: the account is made, then added to
        _add_to_pending(merchant_id, amount_fen, now)
    return movement


def _add_to_pending(merchant_id: int, amount_fen: int, now: datetime) -> int:
    """The pending bucket's ``UPDATE`` by difference, written once (the ORM
    built it for every paid order and refund); the rows it wrote."""
    with rows.cursor() as cursor:
        cursor.execute(_add_to_pending_sql(connection.vendor), [amount_fen, now, merchant_id])
        return cursor.rowcount


@functools.cache
def _add_to_pending_sql(vendor: str) -> str:
    pending = column(MerchantAccount, "pending_fen")
    return (f"UPDATE {table(MerchantAccount)} SET {pending} = {pending} + %s, {column(MerchantAccount, 'updated_at')} "
            f"= %s WHERE {column(MerchantAccount, 'merchant')} = %s")


@transaction.atomic(durable=True)
def record_order_paid(*, order: Order, now: datetime | None = None) -> Movement:
    """The buyer paid: the order's money enters escrow (pending)."""
    return add_to_escrow(merchant_id=order.merchant_id, kind=Movement.Kind.ORDER_PAID, amount_fen=order.amount_fen,
                         now=now or timezone.now(), order=order)


def _release(order: Order, account: MerchantAccount, now: datetime, note: str) -> None:
    amount = order.amount_fen - order.refunded_fen  # what a partial refund left in escrow
    if amount:
        move(account, bucket="pending", kind=Movement.Kind.ORDER_RELEASED, amount_fen=-amount,
              now=now, order=order, note=note)
        move(account, bucket="available", kind=Movement.Kind.ORDER_RELEASED, amount_fen=amount,
              now=now, order=order, note=note)
    account.save(update_fields=["pending_fen", "available_fen", "updated_at"])
    order.escrow_status = Order.EscrowStatus.RELEASED
    order.released_at = now
    if order.status in (Order.Status.SHIPPED, Order.Status.DELIVERED):
        order.status = Order.Status.COMPLETED
    order.save(update_fields=["escrow_status", "released_at", "status"])


@transaction.atomic(durable=True)
def confirm_receipt(*, actor, order_id: int, now: datetime | None = None) -> Order:
    """The buyer confirms receipt: the order's money becomes available to the merchant."""
    now = now or timezone.now()
    order = lock(Order.objects, "order").filter(pk=order_id, buyer=actor).first()
    if order is None or not roles.is_buyer(actor):
        raise NotFound("Order not found.")
    if order.escrow_status != Order.EscrowStatus.PENDING or order.status == Order.Status.PAID:
        raise OrderNotReleasable()
    if order.open_disputes:
        raise OrderDisputed()
    _release(order, lock_account(order.merchant_id), now, "buyer confirmed receipt")
    return order


def auto_confirm_orders(*, now: datetime | None = None, days: int | None = None, batch: int = 500) -> list[int]:
    """Release orders shipped more than ``days`` ago and still in escrow, unless
    disputed. Idempotent: a released order is no longer pending."""
    now = now or timezone.now()
    days = settings.AUTO_CONFIRM_DAYS if days is None else days
    due = list(
        Order.objects.filter(
            escrow_status=Order.EscrowStatus.PENDING, open_disputes=0,
            status__in=[Order.Status.SHIPPED, Order.Status.DELIVERED],
            shipment__shipped_at__lt=now - timedelta(days=days),
        ).order_by("pk").values_list("pk", flat=True)[:batch]
    )
    released = []
    for order_id in due:
        with transaction.atomic(durable=True):
            order = lock(Order.objects, "order").get(pk=order_id)
            if order.escrow_status != Order.EscrowStatus.PENDING or order.open_disputes:
                continue
            _release(order, lock_account(order.merchant_id), now, f"auto-confirmed after {days} days")
            released.append(order_id)
    return released


# --- deposit --------------------------------------------------------------------


@transaction.atomic(durable=True)
def top_up_deposit(*, actor, merchant_id: int, amount_fen: int, now: datetime | None = None) -> MerchantAccount:
    """Merchant staff (their own merchant) or a supervisor adds to the deposit."""
    check_amount(amount_fen)
    get_merchant_for(user=actor, merchant_id=merchant_id)
    if not (roles.is_supervisor(actor) or roles.is_merchant_staff(actor)):
        raise PermissionDenied("Only the merchant or a supervisor tops up a deposit.")
    account = lock_account(merchant_id)
    move(account, bucket="deposit", kind=Movement.Kind.DEPOSIT_TOPUP, amount_fen=amount_fen, now=now or timezone.now())
    account.save(update_fields=["deposit_fen", "updated_at"])
    return account


@transaction.atomic(durable=True)
def deduct_deposit(*, actor, merchant_id: int, amount_fen: int, reason: str, now: datetime | None = None) -> MerchantAccount:
    """A supervisor deducts from the deposit (a penalty), never below zero."""
    check_amount(amount_fen)
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor deducts from a deposit.")
    account = lock_account(merchant_id)
    if amount_fen > account.deposit_fen:
        raise AmountInvalid("The deduction is larger than the deposit.")
    move(account, bucket="deposit", kind=Movement.Kind.DEPOSIT_DEDUCTION, amount_fen=-amount_fen,
          now=now or timezone.now(), note=(reason or "")[:255])
    account.save(update_fields=["deposit_fen", "updated_at"])
    return account


# --- dispute holds (called inside the ticket's transaction) ---------------------


@dataclass(frozen=True)
class DisputeHold:
    """What a dispute did to the order's money: ``hold`` is the order's open
    hold (None while the money is still in escrow); ``linked`` says the hold
    was already there, placed by an earlier dispute on the same order."""

    hold: FundHold | None
    linked: bool = False


def place_dispute_hold(*, order: Order, ticket_id: int, reason: str, amount_fen: int | None = None,
                       now: datetime) -> DisputeHold:
    """A dispute on ``order``: hold the disputed amount (default the order
    amount) if the money reached the merchant; if it is still in escrow, keep
    it there until the dispute ends. One order carries at most one open hold:
    a second dispute links to it (``order.open_disputes`` counts them, and the
    hold is released when the last one ends).

    A merchant whose credit score is below the credit policy's
    ``dispute_hold_below`` gets a hold of the full order amount (less what
    was refunded already) at once, even while the money is still in escrow
    (``rules.below``)."""
    assert transaction.get_connection().in_atomic_block, "runs inside the ticket's transaction"
    amount = order.amount_fen if amount_fen is None else check_amount(amount_fen)
    if amount > order.amount_fen:
        raise AmountInvalid("A hold cannot exceed the order amount.")
    locked = lock(Order.objects, "order").get(pk=order.pk)
    Order.objects.filter(pk=order.pk).update(open_disputes=locked.open_disputes + 1)
    from merchants.services.credit_policy import score_and_policy

    score, policy = score_and_policy(merchant_id=order.merchant_id)
    threshold = policy.dispute_hold_below
    at_once = score is not None and rules.below(score=score, threshold=threshold)
    if at_once and locked.escrow_status != Order.EscrowStatus.REFUNDED:
        amount = locked.refundable_fen  # the full amount still at stake (a partial refund already left)
        reason = f"{reason} · credit {score} < {threshold}: full amount held at once"
    elif locked.escrow_status != Order.EscrowStatus.RELEASED or amount == 0:
        return DisputeHold(hold=None)
    if amount == 0:
        return DisputeHold(hold=None)
    existing = FundHold.objects.filter(order=locked, status=FundHold.Status.HELD).first()
    if existing is not None:
        return DisputeHold(hold=existing, linked=True)
    account = lock_account(order.merchant_id)
    hold = FundHold.objects.create(
        merchant_id=order.merchant_id, order=locked, ticket_id=ticket_id, amount_fen=amount, reason=reason[:255],
        release_condition=_release_condition(ticket_id),
        placed_at=now,
    )
    account.held_fen += amount
    account.save(update_fields=["held_fen", "updated_at"])
    return DisputeHold(hold=hold)


def settle_dispute(*, order_id: int, ticket_id: int, now: datetime, next_ticket_id: int | None = None
                   ) -> FundHold | None:
    """A dispute on the order ended. While another dispute on the same order
    is open (``next_ticket_id``, named by the caller) the order's hold stays
    and now answers to that ticket; the last one releases it, exactly once.
    Returns the hold released, or None."""
    assert transaction.get_connection().in_atomic_block, "runs inside the ticket's transaction"
    order = lock(Order.objects, "order").get(pk=order_id)
    remaining = max(0, order.open_disputes - 1)
    Order.objects.filter(pk=order.pk).update(open_disputes=remaining)
    hold = lock(FundHold.objects, "fund_hold").filter(order=order, status=FundHold.Status.HELD).first()
    if hold is None:
        return None
    if remaining and next_ticket_id is not None:
        if hold.ticket_id == ticket_id:
            hold.ticket_id = next_ticket_id
            hold.release_condition = _release_condition(next_ticket_id)
            hold.save(update_fields=["ticket_id", "release_condition"])
        return None
    account = lock_account(hold.merchant_id)
    hold.status = FundHold.Status.RELEASED
    hold.settled_at = now
    hold.save(update_fields=["status", "settled_at"])
    account.held_fen -= hold.amount_fen
    account.save(update_fields=["held_fen", "updated_at"])
    return hold


def _take_refund_from_balance(account: MerchantAccount, *, amount_fen: int, now: datetime, **links) -> None:
    """A refund taken from the merchant's money: the available balance first,
    then the deposit; never below zero (the caller saves the locked account)."""
    from_available = min(amount_fen, account.available_fen)
    from_deposit = amount_fen - from_available
    if from_deposit > account.deposit_fen:
        raise ExceedsWithdrawable("The merchant's balance and deposit cannot cover this refund.")
    if from_available:
        move(account, bucket="available", kind=Movement.Kind.REFUND, amount_fen=-from_available, now=now, **links)
    if from_deposit:
        move(account, bucket="deposit", kind=Movement.Kind.REFUND, amount_fen=-from_deposit, now=now, **links)


def _release_condition(ticket_id: int) -> str:
    return f"Resolve ticket #{ticket_id}: reply with proof, or accept the refund"


def convert_hold_to_refund(*, order_id: int, amount_fen: int, now: datetime) -> FundHold:
    """Turn the order's dispute hold into a refund of ``amount_fen`` (≤ the
    hold), taken from the available balance, then the deposit (remedies call this)."""
    assert transaction.get_connection().in_atomic_block, "runs inside the remedy's transaction"
    check_amount(amount_fen)
    hold = lock(FundHold.objects, "fund_hold").filter(order_id=order_id, status=FundHold.Status.HELD).first()
    if hold is None:
        raise HoldNotActive()
    if amount_fen > hold.amount_fen:
        raise AmountInvalid("A refund from a hold cannot exceed the hold.")
    account = lock_account(hold.merchant_id)
    _take_refund_from_balance(account, amount_fen=amount_fen, now=now, order=hold.order, hold=hold)
    account.held_fen -= hold.amount_fen
    account.save(update_fields=["available_fen", "deposit_fen", "held_fen", "updated_at"])
    hold.status = FundHold.Status.CONVERTED
    hold.settled_at = now
    hold.save(update_fields=["status", "settled_at"])
    return hold


def lock_refundable(*, order_id: int, amount_fen: int) -> tuple[Order, str]:
    """The order, locked, with ``amount_fen`` left to refund, and where the
    refund will come from: ``escrow`` while the money is pending; once
    released, ``hold`` (the ticket's dispute hold is converted) or ``balance``
    (the merchant's available money, then the deposit). Inside the remedy's
    transaction, which writes its ledger between this and ``refund_order``."""
    assert transaction.get_connection().in_atomic_block, "runs inside the remedy's transaction"
    check_amount(amount_fen)
    taking("order")
    # the order and whether its money is held, in one statement written once (with the remedy's held writes)
    with rows.cursor() as cursor:
        cursor.execute(_lock_refundable_sql(connection.vendor), {"order": order_id, "held": FundHold.Status.HELD})
        row = cursor.fetchone()
    if row is None:
        raise Order.DoesNotExist(f"Order {order_id} does not exist.")
    order, on_hold = rows.split(row, _ORDER)
    if amount_fen > order.refundable_fen:
        raise AmountInvalid(f"At most {order.refundable_fen} fen is left to refund on this order.")
    if order.escrow_status == Order.EscrowStatus.PENDING:
        return order, "escrow"
    return order, "hold" if on_hold else "balance"


_ORDER = Columns(Order, "o")


@functools.cache
def _lock_refundable_sql(vendor: str) -> str:
    on_hold = (f"EXISTS (SELECT 1 FROM {table(FundHold)} h WHERE {column(FundHold, 'order', 'h')} = "
               f"{column(Order, 'id', 'o')} AND {column(FundHold, 'status', 'h')} = %(held)s)")
    return (f"SELECT {_ORDER.sql()}, {on_hold} FROM {table(Order)} o WHERE {column(Order, 'id', 'o')} = %(order)s"
            f"{rows.for_update(of='o')}")


def refund_order(*, order: Order, source: str, amount_fen: int, now: datetime) -> Order:
    """Refund ``amount_fen`` of an order to its buyer from ``source``, as
    ``lock_refundable`` decided it under the order's lock. The merchant's
    account is written last: from escrow by difference (the row every refund
    and every payment of the merchant meets is held only from there to the
    commit); from a hold or the balance locked and read, as they are bounded."""
    assert transaction.get_connection().in_atomic_block, "runs inside the remedy's transaction"
    order.refunded_fen += amount_fen
    fields = ["refunded_fen"]
    if order.refunded_fen == order.amount_fen and order.escrow_status == Order.EscrowStatus.PENDING:
        order.escrow_status = Order.EscrowStatus.REFUNDED
        fields.append("escrow_status")
    update(order, fields)
    if source == "escrow":
        add_to_escrow(merchant_id=order.merchant_id, kind=Movement.Kind.ORDER_REFUNDED, amount_fen=-amount_fen, now=now,
                      order=order)
    elif source == "hold":
        convert_hold_to_refund(order_id=order.pk, amount_fen=amount_fen, now=now)
    else:
        account = lock_account(order.merchant_id)
        _take_refund_from_balance(account, amount_fen=amount_fen, now=now, order=order)
        account.save(update_fields=["available_fen", "deposit_fen", "updated_at"])
    return order


__all__ = [
    "MAX_FEN", "DisputeHold", "add_to_escrow", "auto_confirm_orders", "check_amount", "confirm_receipt", "convert_hold_to_refund",
    "deduct_deposit", "lock_refundable", "move", "place_dispute_hold", "record_order_paid", "refund_order", "settle_dispute",
    "top_up_deposit",
]
