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


def undo_open(*, undo_until: datetime | None, now: datetime) -> bool:
    """A cancellation (or a cancel job) can be undone, and is offered, only
    inside its window."""
    return undo_until is not None and now <= undo_until
