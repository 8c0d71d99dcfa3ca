"""Variant stock: the merchant says what it has on hand of each variant (a
colour or size change before shipment needs it; ``orders.change_order``
moves it)."""

from __future__ import annotations

from django.db import transaction

from core.errors import InvalidInput
from core.locks import lock
from merchants.errors import NotFound
from merchants.models import VariantStock
from merchants.selectors import merchant_id_for

MAX_ON_HAND = 1_000_000


def _text(value, *, field: str) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not 1 <= len(text) <= 64:
        raise InvalidInput(f"{field} is 1–64 characters.", field=field)
    return text


@transaction.atomic(durable=True)
def set_stock(*, actor, merchant_id: int, sku: str, variant: str, on_hand: int) -> VariantStock:
    """The merchant's staff set what is on hand of one variant (a row made on
    first use). The row is locked like an order change locks it, so a count
    never lands in the middle of a change."""
    if merchant_id_for(user=actor) != merchant_id:
        raise NotFound("Merchant not found.")
    sku, variant = _text(sku, field="sku"), _text(variant, field="variant")
    if isinstance(on_hand, bool) or not isinstance(on_hand, int) or not 0 <= on_hand <= MAX_ON_HAND:
        raise InvalidInput(f"on_hand is a whole number from 0 to {MAX_ON_HAND}.", field="on_hand")
    row = lock(VariantStock.objects, "variant_stock").filter(merchant_id=merchant_id, sku=sku, variant=variant).first()
    if row is None:
        row, _ = VariantStock.objects.get_or_create(merchant_id=merchant_id, sku=sku, variant=variant)
        row = lock(VariantStock.objects, "variant_stock").get(pk=row.pk)
    row.on_hand = on_hand
    row.save(update_fields=["on_hand", "updated_at"])
    return row


__all__ = ["MAX_ON_HAND", "set_stock"]
