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


def may_restore_for_account(*, account_status: str | None) -> bool:
    """A cancelled order comes back only while its buyer's account is in good
    standing: a frozen or flagged (stolen) account's bookings stay cancelled."""
    return account_status in (None, "active")


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


# --- what a low credit score does (the thresholds are ``CreditPolicy``) -------------------------

CONSEQUENCE_DISPUTE_HOLD = "dispute_hold"
CONSEQUENCE_PAYOUT_REVIEW = "payout_review"
CONSEQUENCE_SHORT_RESEND = "short_resend"


def below(*, score: int, threshold: int) -> bool:
    """A threshold acts on a score strictly below it (0: the rule is off)."""
    return score < threshold


def credit_consequences(*, score: int, policy) -> list[dict]:
    """Each rule of the credit policy with its threshold and whether this
    score triggers it: the portal explains them to the merchant, the console
    shows them to agents, the services act on the same answers."""
    rows = [
        (CONSEQUENCE_DISPUTE_HOLD, policy.dispute_hold_below),
        (CONSEQUENCE_PAYOUT_REVIEW, policy.payout_review_below),
        (CONSEQUENCE_SHORT_RESEND, policy.short_resend_below),
    ]
    return [{"rule": rule, "threshold": threshold, "active": below(score=score, threshold=threshold)}
            for rule, threshold in rows]


def resend_deadline_hours(*, score: int, policy) -> int:
    """A compelled resend's deadline: shorter below the policy's threshold."""
    if below(score=score, threshold=policy.short_resend_below):
        return min(policy.short_resend_hours, policy.resend_hours)
    return policy.resend_hours
