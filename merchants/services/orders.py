"""Orders: change the address or a variant before shipment, ship, cancel a paid
order before shipment and undo the cancellation within its window.

Each locks the order first, then (when money moves) the merchant account: the
global lock order, so a change never meets a shipment half-way and a cancel
and its undo never interleave.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts import roles
from accounts.models import User
from core.errors import InvalidInput
from core.locks import lock
from core.realtime import publish_on_commit
from merchants import rules
from merchants.errors import (
    AccountRestricted,
    AlreadyCancelled,
    AlreadyShipped,
    ChangedSinceCancel,
    NotCancelled,
    NotFound,
    OrderNotCancellable,
    OutOfStock,
    PermissionDenied,
    UndoExpired,
    UndoUnavailable,
)
from merchants.models import Movement, Order, OrderCancellation, OrderChange, Shipment, VariantStock
from merchants.selectors import merchant_id_for, options_after_shipment
from merchants.services.money import add_to_escrow


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
        moves = []
        for sku, variant in new_variants.items():
            if sku not in by_sku:
                raise InvalidInput(f"The order has no item {sku!r}.", field="variant")
            before = by_sku[sku].get("variant", "")
            changes[f"variant:{sku}"] = [before, variant]
            moves.append(StockMove(sku=sku, old=before, new=variant, qty=_qty(by_sku[sku])))
            by_sku[sku]["variant"] = variant
        # "if stock allows": the new variants leave stock, the old ones come back
        # (an out-of-stock variant refuses the whole change, the address too)
        _move_stock(merchant_id=order.merchant_id, moves=moves)
        order.items = items
    if not changes:
        raise InvalidInput("Nothing would change.")
    order.save(update_fields=["shipping_address", "items"])
    change = OrderChange.objects.create(order=order, actor=actor, changes=changes, ticket_id=ticket_id,
                                        created_at=now or timezone.now())
    publish_on_commit([merchant_group(order.merchant_id)],
                      {"type": "order.changed", "order_id": order.pk, "order_no": order.order_no, "changes": changes})
    return change


@dataclass(frozen=True)
class StockMove:
    sku: str
    old: str
    new: str
    qty: int


def _qty(item: dict) -> int:
    qty = item.get("qty", 1)
    return qty if isinstance(qty, int) and not isinstance(qty, bool) and qty >= 1 else 1


def _move_stock(*, merchant_id: int, moves: list[StockMove]) -> None:
    """Take each move's quantity from its new variant and give it back to the
    old one, on the stock rows locked in primary-key order (after the order
    row: the global lock order), so parallel changes never oversell. A
    variant without a row has none in stock; an old variant the merchant
    does not keep takes nothing back."""
    assert transaction.get_connection().in_atomic_block, "runs inside change_order's transaction"
    wanted = Q(pk__in=[])
    for step in moves:
        wanted |= Q(sku=step.sku, variant__in=[v for v in (step.old, step.new) if v])
    rows = {(row.sku, row.variant): row for row in
            lock(VariantStock.objects, "variant_stock").filter(wanted, merchant_id=merchant_id).order_by("pk")}
    for step in moves:
        row = rows.get((step.sku, step.new))
        on_hand = row.on_hand if row is not None else 0
        if not rules.stock_allows(on_hand=on_hand, qty=step.qty):
            raise OutOfStock(
                f"{step.sku} in {step.new!r} is out of stock ({on_hand} on hand, {step.qty} needed).",
                sku=step.sku, variant=step.new, on_hand=on_hand, needed=step.qty, field="variant",
            )
        row.on_hand -= step.qty
    for step in moves:
        row = rows.get((step.sku, step.old))
        if row is not None:
            row.on_hand += step.qty
    for row in rows.values():
        row.save(update_fields=["on_hand", "updated_at"])


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
        add_to_escrow(merchant_id=order.merchant_id, kind=Movement.Kind.ORDER_CANCELLED, amount_fen=-returned, now=now,
                      order=order, note=reason)
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
    the window, ``changed_since_cancel`` when money moved on the order since,
    ``account_restricted`` while the buyer's account is frozen or flagged (a
    stolen account's cancelled bookings stay cancelled; the buyer's row is
    locked first, so a freeze in between cannot let one back).
    """
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff restore orders.")
    now = now or timezone.now()
    buyer_id = Order.objects.filter(pk=order_id).values_list("buyer_id", flat=True).first()
    if buyer_id is not None:
        status = lock(User.objects, "account").filter(pk=buyer_id).values_list("account_status", flat=True).first()
        if not rules.may_restore_for_account(account_status=status):
            raise AccountRestricted()
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
        add_to_escrow(merchant_id=order.merchant_id, kind=Movement.Kind.ORDER_RESTORED,
                      amount_fen=cancellation.returned_fen, now=now, order=order,
                      note=f"cancellation #{cancellation.pk} undone")
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
    """The channel group of a merchant's portal sockets."""
    return f"merchant.{merchant_id}"



__all__ = ["cancel_order", "change_order", "merchant_group", "restore_order", "ship_order"]
