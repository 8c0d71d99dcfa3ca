"""Row locks of ``merchants``, last in the global order documented in
``tickets/locks.py`` (… → ticket → agent profile → merchant balance)."""

from __future__ import annotations

from django.db import transaction

from merchants.models import MerchantAccount


def lock_account(merchant_id: int) -> MerchantAccount:
    """The merchant's account row, created on first use, locked."""
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"
    account = MerchantAccount.objects.select_for_update().filter(merchant_id=merchant_id).first()
    if account is None:  # the first time: made, then locked like any other
        MerchantAccount.objects.get_or_create(merchant_id=merchant_id)
        account = MerchantAccount.objects.select_for_update().get(merchant_id=merchant_id)
    return account

