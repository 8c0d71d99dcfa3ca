"""Pure decisions of ``merchants``: no writes, no queries.

The order panel (what the agent is offered), the order-change service (what
it does) and the API ask the same functions.
"""

from __future__ import annotations

from datetime import datetime

# Order.Status.PAID: paid, not yet handed to a carrier
CHANGEABLE_STATUSES = ("paid",)


def order_changeable(*, status: str) -> bool:
    """Before shipment an order's address and variants may still change."""
    return status in CHANGEABLE_STATUSES


def requested_changes(*, items: list, shipping_address: str, address: str | None,
                      variants: dict[str, str] | None) -> tuple[str | None, dict[str, str]]:
    """What a change form actually asks, against the order as it is: the new
    address (None when it is the same) and the variants that differ, by SKU
    (an unknown SKU is kept, for the service to refuse by name)."""
    new_address = None
    if address is not None and address.strip() != (shipping_address or ""):
        new_address = address.strip()
    by_sku = {item.get("sku"): item for item in items or [] if isinstance(item, dict)}
    changed = {}
    for sku, variant in (variants or {}).items():
        if not isinstance(variant, str) or not variant.strip():
            continue
        if sku not in by_sku or by_sku[sku].get("variant") != variant.strip():
            changed[sku] = variant.strip()
    return new_address, changed


def stock_allows(*, on_hand: int, qty: int) -> bool:
    """A colour or size change before shipment applies "if stock allows": the
    new variant has at least the item's quantity on hand (an address change
    needs no stock and always applies)."""
    return qty >= 1 and on_hand >= qty


# Shipment.Status values while the parcel is on its way (a carrier can still stop it)
INTERCEPTABLE_SHIPMENT_STATUSES = ("awaiting_pickup", "in_transit", "out_for_delivery", "exception")


def intercept_allowed(*, order_status: str, shipment_status: str | None) -> bool:
    """After shipment, while the parcel travels, the agent may ask the carrier
    to intercept it and compel the merchant to resend; once delivered only a
    return or exchange on receipt remains."""
    return order_status == "shipped" and shipment_status in INTERCEPTABLE_SHIPMENT_STATUSES


def undo_open(*, undo_until: datetime | None, now: datetime) -> bool:
    """A cancellation (or a cancel job) can be undone, and is offered, only
    inside its window."""
    return undo_until is not None and now <= undo_until
