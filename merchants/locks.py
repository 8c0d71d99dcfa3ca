"""Row locks of ``merchants``, last in the global order documented in
``tickets/locks.py`` (… → ticket → agent profile → merchant balance)."""

from __future__ import annotations

from django.db import transaction

from merchants.models import MerchantAccount


def lock_account(merchant_id: int) -> MerchantAccount:
    """The merchant's account row, created on first use, locked."""
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"
    MerchantAccount.objects.get_or_create(merchant_id=merchant_id)
    return MerchantAccount.objects.select_for_update().get(merchant_id=merchant_id)


def lock_accounts(merchant_ids: list[int]) -> dict[int, MerchantAccount]:
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"
    ids = sorted(set(merchant_ids))
    existing = set(MerchantAccount.objects.filter(merchant_id__in=ids).values_list("merchant_id", flat=True))
    for merchant_id in set(ids) - existing:
        MerchantAccount.objects.get_or_create(merchant_id=merchant_id)
    return {a.merchant_id: a for a in MerchantAccount.objects.select_for_update().filter(merchant_id__in=ids).order_by("pk")}
