"""Every write to merchants' money: escrow, deposit, dispute holds, payouts.

Each public function owns its transaction; ``_``-prefixed helpers and the
``*_in_transaction`` functions run inside the caller's (``tickets`` calls
``place_dispute_hold`` and ``settle_dispute`` inside its own ticket transaction,
after the ticket lock, as the global lock order wants).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import roles
from core.errors import InvalidInput
from core.idempotency import request_hash, require_idempotency_key
from core.realtime import publish_on_commit
from core.locks import lock
from merchants.errors import (
    AlreadyCancelled,
    AlreadyShipped,
    AmountInvalid,
    ChangedSinceCancel,
    NotCancelled,
    NotFound,
    OrderNotCancellable,
    UndoExpired,
    UndoUnavailable,
    ExceedsWithdrawable,
    HoldNotActive,
    IdempotencyConflict,
    OrderDisputed,
    OrderNotReleasable,
    PayoutSettled,
    PermissionDenied,
    TaskNotOpen,
)
from merchants import rules
from merchants.escrow import Figures
from merchants.locks import lock_account
from merchants.models import (
    CreditScore,
    FundHold,
    Merchant,
    MerchantAccount,
    Movement,
    Order,
    OrderCancellation,
    OrderChange,
    Payout,
    ResendTask,
    Shipment,
)
from merchants.selectors import get_merchant_for, merchant_id_for

MAX_FEN = 10**13  # ¥100 billion: anything larger is a typo, not a payout


def _check_amount(amount_fen) -> int:
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or not 0 < amount_fen <= MAX_FEN:
        raise AmountInvalid()
    return amount_fen


def _move(account: MerchantAccount, *, bucket: str, kind: str, amount_fen: int, now: datetime, **links) -> Movement:
    field = {"pending": "pending_fen", "available": "available_fen", "deposit": "deposit_fen"}[bucket]
    setattr(account, field, getattr(account, field) + amount_fen)
    return Movement.objects.create(
        merchant_id=account.merchant_id, bucket=bucket, kind=kind, amount_fen=amount_fen, created_at=now, **links
    )


# --- escrow -------------------------------------------------------------------


@transaction.atomic(durable=True)
def record_order_paid(*, order: Order, now: datetime | None = None) -> Movement:
    """The buyer paid: the order's money enters escrow (pending)."""
    now = now or timezone.now()
    account = lock_account(order.merchant_id)
    movement = _move(account, bucket="pending", kind=Movement.Kind.ORDER_PAID, amount_fen=order.amount_fen,
                     now=now, order=order)
    account.save(update_fields=["pending_fen", "updated_at"])
    return movement


def _release(order: Order, account: MerchantAccount, now: datetime, note: str) -> None:
    amount = order.amount_fen - order.refunded_fen  # what a partial refund left in escrow
    if amount:
        _move(account, bucket="pending", kind=Movement.Kind.ORDER_RELEASED, amount_fen=-amount,
              now=now, order=order, note=note)
        _move(account, bucket="available", kind=Movement.Kind.ORDER_RELEASED, amount_fen=amount,
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
    _check_amount(amount_fen)
    get_merchant_for(user=actor, merchant_id=merchant_id)
    if not (roles.is_supervisor(actor) or roles.is_merchant_staff(actor)):
        raise PermissionDenied("Only the merchant or a supervisor tops up a deposit.")
    account = lock_account(merchant_id)
    _move(account, bucket="deposit", kind=Movement.Kind.DEPOSIT_TOPUP, amount_fen=amount_fen, now=now or timezone.now())
    account.save(update_fields=["deposit_fen", "updated_at"])
    return account


@transaction.atomic(durable=True)
def deduct_deposit(*, actor, merchant_id: int, amount_fen: int, reason: str, now: datetime | None = None) -> MerchantAccount:
    """A supervisor deducts from the deposit (a penalty), never below zero."""
    _check_amount(amount_fen)
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor deducts from a deposit.")
    account = lock_account(merchant_id)
    if amount_fen > account.deposit_fen:
        raise AmountInvalid("The deduction is larger than the deposit.")
    _move(account, bucket="deposit", kind=Movement.Kind.DEPOSIT_DEDUCTION, amount_fen=-amount_fen,
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
    hold is released when the last one ends)."""
    assert transaction.get_connection().in_atomic_block, "runs inside the ticket's transaction"
    amount = order.amount_fen if amount_fen is None else _check_amount(amount_fen)
    if amount > order.amount_fen:
        raise AmountInvalid("A hold cannot exceed the order amount.")
    locked = lock(Order.objects, "order").get(pk=order.pk)
    Order.objects.filter(pk=order.pk).update(open_disputes=locked.open_disputes + 1)
    if locked.escrow_status != Order.EscrowStatus.RELEASED or amount == 0:
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
        _move(account, bucket="available", kind=Movement.Kind.REFUND, amount_fen=-from_available, now=now, **links)
    if from_deposit:
        _move(account, bucket="deposit", kind=Movement.Kind.REFUND, amount_fen=-from_deposit, now=now, **links)


def _release_condition(ticket_id: int) -> str:
    return f"Resolve ticket #{ticket_id}: reply with proof, or accept the refund"


def convert_hold_to_refund(*, order_id: int, amount_fen: int, now: datetime) -> FundHold:
    """Turn the order's dispute hold into a refund of ``amount_fen`` (≤ the
    hold), taken from the available balance, then the deposit (remedies call this)."""
    assert transaction.get_connection().in_atomic_block, "runs inside the remedy's transaction"
    _check_amount(amount_fen)
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


def refund_order(*, order_id: int, ticket_id: int, amount_fen: int, now: datetime) -> tuple[Order, str]:
    """Refund ``amount_fen`` of an order to its buyer (inside the remedy's
    transaction): from the escrow while the money is pending; once released,
    by converting the ticket's dispute hold, else from the merchant's balance
    (available, then deposit). Returns the order and the source used."""
    assert transaction.get_connection().in_atomic_block, "runs inside the remedy's transaction"
    _check_amount(amount_fen)
    order = lock(Order.objects, "order").get(pk=order_id)
    if amount_fen > order.refundable_fen:
        raise AmountInvalid(f"At most {order.refundable_fen} fen is left to refund on this order.")
    if order.escrow_status == Order.EscrowStatus.PENDING:
        account = lock_account(order.merchant_id)
        _move(account, bucket="pending", kind=Movement.Kind.ORDER_REFUNDED, amount_fen=-amount_fen, now=now, order=order)
        account.save(update_fields=["pending_fen", "updated_at"])
        source = "escrow"
    elif FundHold.objects.filter(status=FundHold.Status.HELD, order=order).exists():
        convert_hold_to_refund(order_id=order.pk, amount_fen=amount_fen, now=now)
        source = "hold"
    else:
        account = lock_account(order.merchant_id)
        _take_refund_from_balance(account, amount_fen=amount_fen, now=now, order=order)
        account.save(update_fields=["available_fen", "deposit_fen", "updated_at"])
        source = "balance"
    order.refunded_fen += amount_fen
    fields = ["refunded_fen"]
    if order.refunded_fen == order.amount_fen and order.escrow_status == Order.EscrowStatus.PENDING:
        order.escrow_status = Order.EscrowStatus.REFUNDED
        fields.append("escrow_status")
    order.save(update_fields=fields)
    return order, source


# --- payouts ----------------------------------------------------------------------



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
    _check_amount(amount_fen)
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
    _move(account, bucket="available", kind=Movement.Kind.PAYOUT, amount_fen=-amount_fen, now=now, payout=payout)
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
        _move(account, bucket="available", kind=Movement.Kind.PAYOUT_RETURNED, amount_fen=payout.amount_fen,
              now=now, payout=payout)
        account.save(update_fields=["available_fen", "updated_at"])
    return payout




# --- compelled resends ------------------------------------------------------------

RESEND_DEADLINE = timedelta(hours=48)


def create_resend_task(*, order: Order, ticket_id: int, reason: str, now: datetime,
                       deadline: timedelta = RESEND_DEADLINE) -> ResendTask:
    """Compel the merchant to ship again (the remedies issue calls this inside
    its own transaction)."""
    assert transaction.get_connection().in_atomic_block, "runs inside the caller's transaction"
    task = ResendTask.objects.create(
        merchant_id=order.merchant_id, order=order, ticket_id=ticket_id, reason=reason[:255],
        deadline_at=now + deadline, created_at=now,
    )
    publish_on_commit([merchant_group(order.merchant_id)], {"type": "resend.task", "task_id": task.pk,
                                                           "order_no": order.order_no,
                                                           "deadline_at": task.deadline_at.isoformat()})
    return task


@transaction.atomic(durable=True)
def fulfil_resend_task(*, actor, task_id: int, carrier: str, tracking_no: str,
                       now: datetime | None = None) -> ResendTask:
    """The merchant enters the carrier and tracking number of the new parcel."""
    carrier = (carrier or "").strip()
    tracking_no = (tracking_no or "").strip()
    if not carrier or len(carrier) > 32:
        raise InvalidInput("carrier is 1–32 characters.", field="carrier")
    if not tracking_no or len(tracking_no) > 64 or not tracking_no.replace("-", "").isalnum():
        raise InvalidInput("tracking_no is 1–64 letters and digits.", field="tracking_no")
    task = lock(ResendTask.objects, "resend_task").filter(pk=task_id).first()
    if task is None or merchant_id_for(user=actor) != task.merchant_id:
        raise NotFound("Task not found.")
    if task.status != ResendTask.Status.OPEN:
        raise TaskNotOpen()
    task.status = ResendTask.Status.FULFILLED
    task.carrier = carrier
    task.tracking_no = tracking_no
    task.fulfilled_at = now or timezone.now()
    task.save(update_fields=["status", "carrier", "tracking_no", "fulfilled_at"])
    return task


def mark_missed_resends(*, now: datetime | None = None) -> list[ResendTask]:
    """Mark open tasks past their deadline missed (idempotent) and recompute
    the merchants' credit. ``tickets`` escalates the tickets."""
    now = now or timezone.now()
    missed = []
    with transaction.atomic():
        for task in lock(ResendTask.objects, "resend_task", skip_locked=True).filter(
            status=ResendTask.Status.OPEN, deadline_at__lt=now
        ).order_by("pk")[:500]:
            task.status = ResendTask.Status.MISSED
            task.missed_at = now
            task.save(update_fields=["status", "missed_at"])
            missed.append(task)
    for merchant_id in sorted({t.merchant_id for t in missed}):
        compute_credit(merchant_id=merchant_id, now=now)
    return missed


# --- credit score -----------------------------------------------------------------

CREDIT_WINDOW = timedelta(days=90)
DEFAULT_SHIP_WITHIN = timedelta(hours=48)


def credit_components(*, merchant_id: int, now: datetime) -> tuple[float, float, float]:
    """(dispute rate, on-time shipping, resend compliance) over the last 90 days."""
    since = now - CREDIT_WINDOW
    orders = Order.objects.filter(merchant_id=merchant_id, placed_at__gte=since)
    order_count = orders.count()
    disputes = FundHold.objects.filter(merchant_id=merchant_id, placed_at__gte=since).count()
    dispute_rate = disputes / order_count if order_count else 0.0
    shipped = list(orders.filter(shipment__shipped_at__isnull=False).values_list(
        "placed_at", "ship_by", "shipment__shipped_at"))
    on_time = sum(1 for placed, ship_by, shipped_at in shipped if shipped_at <= (ship_by or placed + DEFAULT_SHIP_WITHIN))
    on_time_rate = on_time / len(shipped) if shipped else 1.0
    tasks = ResendTask.objects.filter(merchant_id=merchant_id, created_at__gte=since).exclude(status=ResendTask.Status.OPEN)
    done = tasks.filter(status=ResendTask.Status.FULFILLED).count()
    decided = tasks.count()
    compliance = done / decided if decided else 1.0
    return dispute_rate, on_time_rate, compliance


def credit_score_from(dispute_rate: float, on_time: float, compliance: float) -> int:
    """40 points for few disputes (none at a 20 % rate), 30 for shipping on
    time, 30 for fulfilling compelled resends."""
    disputes_part = 1 - min(1.0, dispute_rate * 5)
    return round(100 * (0.4 * disputes_part + 0.3 * on_time + 0.3 * compliance))


def compute_credit(*, merchant_id: int, now: datetime | None = None) -> CreditScore:
    now = now or timezone.now()
    dispute_rate, on_time, compliance = credit_components(merchant_id=merchant_id, now=now)
    score = credit_score_from(dispute_rate, on_time, compliance)
    with transaction.atomic():
        row = CreditScore.objects.create(
            merchant_id=merchant_id, score=score, dispute_rate=dispute_rate, on_time_shipping=on_time,
            resend_compliance=compliance, computed_at=now,
        )
        Merchant.objects.filter(pk=merchant_id).update(credit_score=score)
    return row


def recompute_credit_scores(*, now: datetime | None = None) -> int:
    ids = list(Merchant.objects.values_list("pk", flat=True))
    for merchant_id in ids:
        compute_credit(merchant_id=merchant_id, now=now)
    return len(ids)


# --- order changes and shipping ------------------------------------------------------


@dataclass(frozen=True)
class RemainingOptions:
    options: list[str]
    applies: str


def options_after_shipment(order: Order) -> RemainingOptions:
    """What is left once an order shipped: intercept and resend while the
    parcel travels, return/exchange on receipt once delivered."""
    try:
        delivered = order.shipment.status == "delivered"
    except ObjectDoesNotExist:
        delivered = False
    options = ["intercept_and_resend", "return_or_exchange_on_receipt"]
    return RemainingOptions(options, options[1] if delivered or order.status != Order.Status.SHIPPED else options[0])


@transaction.atomic(durable=True)
def change_order(*, actor, order_id: int, address: str | None = None, variants: dict[str, str] | None = None,
                 ticket_id: int | None = None, now: datetime | None = None) -> OrderChange:
    """Before shipment, an agent changes the address or an item's variant
    (colour, size). The order row is locked, so a change never meets a
    shipment half-way: after shipping it is a 409 with the options left."""
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff change orders.")
    if address is None and not variants:
        raise InvalidInput("Give an address or a variant to change.")
    if address is not None and not 5 <= len(address.strip()) <= 255:
        raise InvalidInput("address is 5–255 characters.", field="address")
    for variant in (variants or {}).values():
        if not isinstance(variant, str) or not 1 <= len(variant.strip()) <= 64:
            raise InvalidInput("A variant is 1–64 characters.", field="variant")
    order = lock(Order.objects, "order").filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order not found.")
    if not rules.order_changeable(status=order.status):
        remaining = options_after_shipment(order)
        raise AlreadyShipped(options=remaining.options, applies=remaining.applies)
    new_address, new_variants = rules.requested_changes(items=order.items, shipping_address=order.shipping_address,
                                                        address=address, variants=variants)
    changes: dict[str, list] = {}
    if new_address is not None:
        changes["address"] = [order.shipping_address, new_address]
        order.shipping_address = new_address
    if new_variants:
        items = [dict(item) for item in order.items]
        by_sku = {item["sku"]: item for item in items}
        for sku, variant in new_variants.items():
            if sku not in by_sku:
                raise InvalidInput(f"The order has no item {sku!r}.", field="variant")
            changes[f"variant:{sku}"] = [by_sku[sku].get("variant", ""), variant]
            by_sku[sku]["variant"] = variant
        order.items = items
    if not changes:
        raise InvalidInput("Nothing would change.")
    order.save(update_fields=["shipping_address", "items"])
    change = OrderChange.objects.create(order=order, actor=actor, changes=changes, ticket_id=ticket_id,
                                        created_at=now or timezone.now())
    publish_on_commit([merchant_group(order.merchant_id)],
                      {"type": "order.changed", "order_id": order.pk, "order_no": order.order_no, "changes": changes})
    return change


@transaction.atomic(durable=True)
def ship_order(*, actor, order_id: int, carrier: str, tracking_no: str, now: datetime | None = None) -> Order:
    """The merchant hands the parcel to a carrier (locks the order like a change does)."""
    order = lock(Order.objects, "order").filter(pk=order_id).first()
    if order is None or merchant_id_for(user=actor) != order.merchant_id:
        raise NotFound("Order not found.")
    if order.status != Order.Status.PAID:
        raise AlreadyShipped()
    carrier, tracking_no = (carrier or "").strip(), (tracking_no or "").strip()
    if not carrier or not tracking_no or len(carrier) > 32 or len(tracking_no) > 64:
        raise InvalidInput("carrier and tracking_no are required.")
    now = now or timezone.now()
    Shipment.objects.create(order=order, carrier=carrier, tracking_no=tracking_no,
                            status=Shipment.Status.AWAITING_PICKUP, shipped_at=now)
    order.status = Order.Status.SHIPPED
    order.save(update_fields=["status"])
    return order


# --- cancelling a paid order before shipment, and undoing it ----------------------


@transaction.atomic(durable=True)
def cancel_order(*, actor, order_id: int, reason: str, now: datetime | None = None) -> OrderCancellation:
    """Staff cancel a paid order that has not shipped: what is left of its
    money in escrow goes back to the buyer (the merchant's pending balance
    falls by it), recorded with who, why and until when it can be undone.

    Locks the order, then the merchant account (the global order). Safe to
    repeat one order at a time: an order already cancelled is a 409
    ``already_cancelled``, one that shipped a 409 ``already_shipped``.
    """
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff cancel orders.")
    reason = (reason or "").strip()
    if not reason or len(reason) > 255:
        raise InvalidInput("Give a reason (at most 255 characters).", field="reason")
    now = now or timezone.now()
    order = lock(Order.objects, "order").filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order not found.")
    if order.status == Order.Status.CANCELLED:
        raise AlreadyCancelled()
    if order.status != Order.Status.PAID:
        remaining = options_after_shipment(order)
        raise AlreadyShipped("The order has shipped; it can no longer be cancelled.",
                             options=remaining.options, applies=remaining.applies)
    if order.escrow_status == Order.EscrowStatus.RELEASED:
        raise OrderNotCancellable()
    returned = order.amount_fen - order.refunded_fen if order.escrow_status == Order.EscrowStatus.PENDING else 0
    if returned:
        account = lock_account(order.merchant_id)
        _move(account, bucket="pending", kind=Movement.Kind.ORDER_CANCELLED, amount_fen=-returned, now=now,
              order=order, note=reason)
        account.save(update_fields=["pending_fen", "updated_at"])
    mark = order.movements.order_by("-pk").values_list("pk", flat=True).first() or 0
    cancellation = OrderCancellation.objects.create(
        order=order, cancelled_by=actor, reason=reason, returned_fen=returned,
        escrow_status_before=order.escrow_status, cancelled_at=now, movement_mark=mark,
        undo_until=now + timedelta(seconds=settings.CANCEL_UNDO_WINDOW_S),
    )
    order.status = Order.Status.CANCELLED
    order.escrow_status = Order.EscrowStatus.REFUNDED
    order.refunded_fen += returned
    order.save(update_fields=["status", "escrow_status", "refunded_fen"])
    publish_on_commit([merchant_group(order.merchant_id)],
                      {"type": "order.cancelled", "order_id": order.pk, "order_no": order.order_no})
    return cancellation


@transaction.atomic(durable=True)
def restore_order(*, actor, order_id: int, now: datetime | None = None) -> Order:
    """Undo a cancellation within ``CANCEL_UNDO_WINDOW_S``, if nothing happened
    to the order since: it is paid again and its money back in escrow.

    Locks the order, then the merchant account, like ``cancel_order``, so a
    cancel and its undo never interleave. 409 ``not_cancelled`` when there is
    nothing to undo (also when a parallel undo won), ``undo_expired`` after
    the window, ``changed_since_cancel`` when money moved on the order since.
    """
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff restore orders.")
    now = now or timezone.now()
    order = lock(Order.objects, "order").filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order not found.")
    if order.status != Order.Status.CANCELLED:
        raise NotCancelled()
    # every writer of an order's cancellations holds the order's lock
    cancellation = order.cancellations.filter(restored_at__isnull=True).order_by("-cancelled_at", "-pk").first()
    if cancellation is None:
        raise UndoUnavailable("The order was not cancelled through the workbench; nothing records what to undo.")
    if not rules.undo_open(undo_until=cancellation.undo_until, now=now):
        raise UndoExpired()
    moved_since = order.movements.filter(pk__gt=cancellation.movement_mark).exists()
    if moved_since or order.escrow_status != Order.EscrowStatus.REFUNDED or order.refunded_fen != order.amount_fen:
        raise ChangedSinceCancel()
    if cancellation.returned_fen:
        account = lock_account(order.merchant_id)
        _move(account, bucket="pending", kind=Movement.Kind.ORDER_RESTORED, amount_fen=cancellation.returned_fen,
              now=now, order=order, note=f"cancellation #{cancellation.pk} undone")
        account.save(update_fields=["pending_fen", "updated_at"])
    order.status = Order.Status.PAID
    order.escrow_status = cancellation.escrow_status_before
    order.refunded_fen -= cancellation.returned_fen
    order.save(update_fields=["status", "escrow_status", "refunded_fen"])
    cancellation.restored_by = actor
    cancellation.restored_at = now
    cancellation.save(update_fields=["restored_by", "restored_at"])
    publish_on_commit([merchant_group(order.merchant_id)],
                      {"type": "order.restored", "order_id": order.pk, "order_no": order.order_no})
    return order


def merchant_group(merchant_id: int) -> str:
    return f"merchant.{merchant_id}"
