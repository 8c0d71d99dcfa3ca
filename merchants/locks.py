"""Row locks of ``merchants``, in the one global order of ``core/locks.py``
(… order → variant stock → resend task → fund hold → payout → merchant account → …)."""

from __future__ import annotations

from django.db import transaction

from core.locks import lock
from merchants.models import MerchantAccount


def lock_account(merchant_id: int) -> MerchantAccount:
    """The merchant's account row, created on first use, locked."""
    assert transaction.get_connection().in_atomic_block, "lock helpers run inside a transaction"
    account = lock(MerchantAccount.objects, "merchant_account").filter(merchant_id=merchant_id).first()
    if account is None:  # the first time: made, then locked like any other
        MerchantAccount.objects.get_or_create(merchant_id=merchant_id)
        account = lock(MerchantAccount.objects, "merchant_account").get(merchant_id=merchant_id)
    return account

