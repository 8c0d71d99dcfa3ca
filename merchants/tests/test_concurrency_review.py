"""Payouts of a low-credit merchant on PostgreSQL: set aside exactly, never
beyond withdrawable, under parallel requests and parallel reviews."""

import pytest

from merchants import services
from merchants.errors import ExceedsWithdrawable, PayoutNotInReview
from merchants.models import Merchant, MerchantAccount, Payout
from merchants.tests.factories import fund
from tests.concurrency import race, requires_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_parallel_reviewed_payouts_never_exceed_withdrawable(merchant, merchant_user):
    requires_postgres()
    fund(merchant, available_fen=10_000)
    Merchant.objects.filter(pk=merchant.pk).update(credit_score=30)

    results, errors = race(
        lambda i: services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=3_000,
                                          idempotency_key=f"k{i}"),
        8,
    )

    assert len(results) == 3 and all(p.status == "awaiting_review" for p, _ in results)
    assert len(errors) == 5 and all(isinstance(e, ExceedsWithdrawable) for e in errors)
    assert MerchantAccount.objects.get(merchant=merchant).available_fen == 1_000


def test_parallel_reviews_decide_once_and_return_the_money_once(merchant, merchant_user, supervisor):
    requires_postgres()
    fund(merchant, available_fen=10_000)
    Merchant.objects.filter(pk=merchant.pk).update(credit_score=30)
    payout, _ = services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=4_000,
                                        idempotency_key="one")

    results, errors = race(
        lambda i: services.review_payout(actor=supervisor, payout_id=payout.pk, approve=i % 2 == 0,
                                         note=f"decision {i}"),
        6,
    )

    assert len(results) == 1
    assert len(errors) == 5 and all(isinstance(e, PayoutNotInReview) for e in errors)
    final = Payout.objects.get(pk=payout.pk)
    available = MerchantAccount.objects.get(merchant=merchant).available_fen
    assert (final.status, available) in (("requested", 6_000), ("rejected", 10_000))
