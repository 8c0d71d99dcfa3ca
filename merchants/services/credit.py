"""The merchant's credit score: computed from the last 90 days (the components
are a read, ``merchants.selectors.credit_components``) and stored with its history."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from merchants.models import CreditScore, Merchant
from merchants.selectors import credit_components


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


__all__ = ["compute_credit", "credit_score_from", "recompute_credit_scores"]
