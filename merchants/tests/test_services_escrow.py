"""Escrow, deposit and payouts through the services, checked against the
append-only movements."""

from datetime import timedelta

import pytest
from django.db.models import Sum
from django.utils import timezone

from merchants import services
from merchants.errors import (
    AmountInvalid,
    ExceedsWithdrawable,
    IdempotencyConflict,
    NotFound,
    OrderDisputed,
    OrderNotReleasable,
    PayoutSettled,
    PermissionDenied,
)
from merchants.models import MerchantAccount, Movement, Order, Payout
from merchants.tests.factories import ShipmentFactory, fund, paid_order


def _buckets(merchant) -> dict[str, int]:
    sums = Movement.objects.filter(merchant=merchant).values("bucket").annotate(total=Sum("amount_fen"))
    return {row["bucket"]: row["total"] for row in sums}


def _assert_account_matches_movements(merchant) -> MerchantAccount:
    account = MerchantAccount.objects.get(merchant=merchant)
    sums = _buckets(merchant)
    assert account.pending_fen == sums.get("pending", 0)
    assert account.available_fen == sums.get("available", 0)
    assert account.deposit_fen == sums.get("deposit", 0)
    return account


@pytest.mark.django_db
def test_paid_order_is_pending_until_the_buyer_confirms(merchant):
    order = paid_order(merchant=merchant, amount_fen=5000)
    account = _assert_account_matches_movements(merchant)
    assert (account.pending_fen, account.available_fen) == (5000, 0)
    services.confirm_receipt(actor=order.buyer, order_id=order.pk)
    account = _assert_account_matches_movements(merchant)
    assert (account.pending_fen, account.available_fen) == (0, 5000)
    order.refresh_from_db()
    assert (order.escrow_status, order.status) == ("released", "completed")
    with pytest.raises(OrderNotReleasable):
        services.confirm_receipt(actor=order.buyer, order_id=order.pk)


@pytest.mark.django_db
def test_only_the_orders_buyer_confirms(merchant, other_buyer, agent):
    order = paid_order(merchant=merchant)
    for outsider in (other_buyer, agent):
        with pytest.raises(NotFound):
            services.confirm_receipt(actor=outsider, order_id=order.pk)
    assert Order.objects.get(pk=order.pk).escrow_status == "pending"


@pytest.mark.django_db
def test_unshipped_or_disputed_order_is_not_released(merchant):
    unshipped = paid_order(merchant=merchant, status=Order.Status.PAID)
    with pytest.raises(OrderNotReleasable):
        services.confirm_receipt(actor=unshipped.buyer, order_id=unshipped.pk)
    disputed = paid_order(merchant=merchant)
    Order.objects.filter(pk=disputed.pk).update(open_disputes=1)
    with pytest.raises(OrderDisputed):
        services.confirm_receipt(actor=disputed.buyer, order_id=disputed.pk)


@pytest.mark.django_db
def test_auto_confirm_releases_old_undisputed_orders_once(merchant):
    now = timezone.now()
    old = paid_order(merchant=merchant, amount_fen=1000)
    ShipmentFactory(order=old, shipped_at=now - timedelta(days=11))
    recent = paid_order(merchant=merchant, amount_fen=2000)
    ShipmentFactory(order=recent, shipped_at=now - timedelta(days=3))
    disputed = paid_order(merchant=merchant, amount_fen=4000)
    ShipmentFactory(order=disputed, shipped_at=now - timedelta(days=20))
    Order.objects.filter(pk=disputed.pk).update(open_disputes=1)

    assert services.auto_confirm_orders(now=now, days=10) == [old.pk]
    assert services.auto_confirm_orders(now=now, days=10) == []
    account = _assert_account_matches_movements(merchant)
    assert (account.pending_fen, account.available_fen) == (6000, 1000)


@pytest.mark.django_db
def test_auto_confirm_command_and_task(merchant):
    from django.core.management import call_command

    from merchants.tasks import auto_confirm

    order = paid_order(merchant=merchant)
    ShipmentFactory(order=order, shipped_at=timezone.now() - timedelta(days=30))
    assert auto_confirm.delay().get() == 1
    call_command("auto_confirm")
    assert Order.objects.get(pk=order.pk).escrow_status == "released"


@pytest.mark.django_db
def test_deposit_top_up_and_deduction(merchant, merchant_user, other_merchant_user, supervisor, agent):
    services.top_up_deposit(actor=merchant_user, merchant_id=merchant.pk, amount_fen=100_000)
    services.top_up_deposit(actor=supervisor, merchant_id=merchant.pk, amount_fen=20_000)
    with pytest.raises(NotFound):
        services.top_up_deposit(actor=other_merchant_user, merchant_id=merchant.pk, amount_fen=1)
    with pytest.raises(PermissionDenied):
        services.top_up_deposit(actor=agent, merchant_id=merchant.pk, amount_fen=1)
    with pytest.raises(PermissionDenied):
        services.deduct_deposit(actor=merchant_user, merchant_id=merchant.pk, amount_fen=1, reason="x")
    with pytest.raises(AmountInvalid):
        services.deduct_deposit(actor=supervisor, merchant_id=merchant.pk, amount_fen=200_000, reason="x")
    services.deduct_deposit(actor=supervisor, merchant_id=merchant.pk, amount_fen=30_000, reason="虚假发货")
    assert _assert_account_matches_movements(merchant).deposit_fen == 90_000


@pytest.mark.django_db
@pytest.mark.parametrize("amount", [0, -5, 1.5, "100", True, 10**14])
def test_bad_amounts_are_refused(merchant, merchant_user, amount):
    fund(merchant, available_fen=10_000)
    with pytest.raises(AmountInvalid):
        services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=amount, idempotency_key="k")
    assert not Payout.objects.exists()


@pytest.mark.django_db
def test_payout_takes_from_available_at_once_and_is_idempotent(merchant, merchant_user):
    fund(merchant, available_fen=10_000)
    payout, created = services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=4_000,
                                              idempotency_key="k1")
    assert created and payout.status == "requested"
    assert _assert_account_matches_movements(merchant).available_fen == 6_000
    again, created = services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=4_000,
                                             idempotency_key="k1")
    assert not created and again.pk == payout.pk
    with pytest.raises(IdempotencyConflict):
        services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=5_000, idempotency_key="k1")
    assert _assert_account_matches_movements(merchant).available_fen == 6_000


@pytest.mark.django_db
def test_payout_never_exceeds_withdrawable(merchant, merchant_user, other_merchant_user, agent):
    fund(merchant, available_fen=10_000)
    MerchantAccount.objects.filter(merchant=merchant).update(held_fen=3_000)  # no deposit: 3,000 frozen
    with pytest.raises(ExceedsWithdrawable) as refused:
        services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=7_001, idempotency_key="a")
    assert refused.value.status == 422 and refused.value.extra["withdrawable_fen"] == 7_000
    services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=7_000, idempotency_key="b")
    with pytest.raises(NotFound):
        services.request_payout(actor=other_merchant_user, merchant_id=merchant.pk, amount_fen=1, idempotency_key="c")
    with pytest.raises(PermissionDenied):
        services.request_payout(actor=agent, merchant_id=merchant.pk, amount_fen=1, idempotency_key="d")
    assert Payout.objects.count() == 1


@pytest.mark.django_db
def test_failed_payout_returns_the_money(merchant, merchant_user):
    fund(merchant, available_fen=10_000)
    payout, _ = services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=10_000,
                                        idempotency_key="k")
    services.settle_payout(payout_id=payout.pk, paid=False, reason="账户名不符")
    assert _assert_account_matches_movements(merchant).available_fen == 10_000
    with pytest.raises(PayoutSettled):
        services.settle_payout(payout_id=payout.pk, paid=True)
    paid, _ = services.request_payout(actor=merchant_user, merchant_id=merchant.pk, amount_fen=2_500,
                                      idempotency_key="k2")
    services.settle_payout(payout_id=paid.pk, paid=True)
    assert _assert_account_matches_movements(merchant).available_fen == 7_500
    assert Payout.objects.get(pk=paid.pk).status == "paid"
