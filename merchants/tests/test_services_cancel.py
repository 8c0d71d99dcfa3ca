"""Cancelling a paid order before shipment, and undoing it within the window,
checked against the merchant's append-only movements and escrow figures."""

from datetime import timedelta
from unittest import mock

import pytest
from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone

from merchants import services
from merchants.errors import (
    AlreadyCancelled,
    AlreadyShipped,
    AmountInvalid,
    ChangedSinceCancel,
    NotCancelled,
    NotFound,
    PermissionDenied,
    UndoExpired,
    UndoUnavailable,
)
from merchants.models import MerchantAccount, Movement, Order, OrderCancellation
from merchants.tests.factories import OrderFactory, paid_order
from core.errors import InvalidInput


def assert_books_balance(merchant) -> MerchantAccount:
    """The account equals the sum of its movements, and pending equals what
    the merchant's orders still hold in escrow."""
    account = MerchantAccount.objects.get(merchant=merchant)
    sums = {row["bucket"]: row["total"] for row in
            Movement.objects.filter(merchant=merchant).values("bucket").annotate(total=Sum("amount_fen"))}
    assert account.pending_fen == sums.get("pending", 0)
    assert account.available_fen == sums.get("available", 0)
    in_escrow = Order.objects.filter(merchant=merchant, escrow_status=Order.EscrowStatus.PENDING).aggregate(
        total=Sum(F("amount_fen") - F("refunded_fen")))["total"] or 0
    assert account.pending_fen == in_escrow
    return account


def _unshipped(merchant, amount_fen=19_900, **kwargs) -> Order:
    return paid_order(merchant=merchant, amount_fen=amount_fen, status=Order.Status.PAID, **kwargs)


@pytest.mark.django_db
def test_cancel_returns_the_escrow_and_lowers_pending(merchant, supervisor, django_capture_on_commit_callbacks):
    keep = _unshipped(merchant, amount_fen=5_000)
    order = _unshipped(merchant, amount_fen=19_900)
    assert assert_books_balance(merchant).pending_fen == 24_900
    now = timezone.now()

    with mock.patch("merchants.services.orders.publish_on_commit") as publish:
        cancellation = services.cancel_order(actor=supervisor, order_id=order.pk, reason="盗号下单", now=now)

    order.refresh_from_db()
    assert (order.status, order.escrow_status, order.refunded_fen) == ("cancelled", "refunded", 19_900)
    assert (cancellation.returned_fen, cancellation.cancelled_by, cancellation.reason) == (19_900, supervisor, "盗号下单")
    assert cancellation.undo_until == now + timedelta(seconds=600)
    assert assert_books_balance(merchant).pending_fen == 5_000
    movement = Movement.objects.get(order=order, kind="order_cancelled")
    assert (movement.bucket, movement.amount_fen) == ("pending", -19_900)
    groups, payload = publish.call_args.args
    assert groups == [f"merchant.{merchant.pk}"] and payload["type"] == "order.cancelled"
    assert Order.objects.get(pk=keep.pk).status == "paid"


@pytest.mark.django_db
def test_cancelling_twice_is_a_clear_409_not_a_second_refund(merchant, agent):
    order = _unshipped(merchant)
    services.cancel_order(actor=agent, order_id=order.pk, reason="买家要求取消")
    with pytest.raises(AlreadyCancelled) as again:
        services.cancel_order(actor=agent, order_id=order.pk, reason="买家要求取消")
    assert (again.value.code, again.value.status) == ("already_cancelled", 409)
    assert Movement.objects.filter(order=order, kind="order_cancelled").count() == 1
    assert assert_books_balance(merchant).pending_fen == 0


@pytest.mark.django_db
@pytest.mark.parametrize("status", ["shipped", "delivered", "completed"])
def test_only_unshipped_orders_are_cancelled(merchant, agent, status):
    order = paid_order(merchant=merchant, status=status)
    with pytest.raises(AlreadyShipped) as refused:
        services.cancel_order(actor=agent, order_id=order.pk, reason="x")
    assert (refused.value.code, refused.value.status) == ("already_shipped", 409)
    assert refused.value.extra["options"]
    assert Order.objects.get(pk=order.pk).status == status
    assert not OrderCancellation.objects.exists()


@pytest.mark.django_db
def test_who_may_cancel_and_bad_input(merchant, buyer, merchant_user, agent):
    order = _unshipped(merchant, buyer=buyer)
    for outsider in (buyer, merchant_user):
        with pytest.raises(PermissionDenied):
            services.cancel_order(actor=outsider, order_id=order.pk, reason="x")
        with pytest.raises(PermissionDenied):
            services.restore_order(actor=outsider, order_id=order.pk)
    for reason in ("", "   ", "长" * 256):
        with pytest.raises(InvalidInput):
            services.cancel_order(actor=agent, order_id=order.pk, reason=reason)
    with pytest.raises(NotFound):
        services.cancel_order(actor=agent, order_id=999_999, reason="x")
    with pytest.raises(NotFound):
        services.restore_order(actor=agent, order_id=999_999)
    assert Order.objects.get(pk=order.pk).status == "paid"


@pytest.mark.django_db
def test_undo_within_the_window_puts_the_money_back_in_escrow(merchant, agent, supervisor):
    order = _unshipped(merchant, amount_fen=8_800)
    now = timezone.now()
    cancellation = services.cancel_order(actor=supervisor, order_id=order.pk, reason="误判", now=now)
    assert assert_books_balance(merchant).pending_fen == 0

    restored = services.restore_order(actor=agent, order_id=order.pk, now=now + timedelta(seconds=600))

    assert (restored.status, restored.escrow_status, restored.refunded_fen) == ("paid", "pending", 0)
    assert assert_books_balance(merchant).pending_fen == 8_800
    cancellation.refresh_from_db()
    assert (cancellation.restored_by, cancellation.restored_at) == (agent, now + timedelta(seconds=600))
    assert Movement.objects.get(order=order, kind="order_restored").amount_fen == 8_800
    with pytest.raises(NotCancelled) as again:
        services.restore_order(actor=agent, order_id=order.pk)
    assert again.value.code == "not_cancelled"
    # cancelled again after an undo: a new cancellation, undone again
    services.cancel_order(actor=supervisor, order_id=order.pk, reason="再次确认盗号")
    services.restore_order(actor=supervisor, order_id=order.pk)
    assert OrderCancellation.objects.filter(order=order).count() == 2
    assert assert_books_balance(merchant).pending_fen == 8_800


@pytest.mark.django_db
def test_undo_after_the_window_is_refused(merchant, supervisor):
    order = _unshipped(merchant)
    now = timezone.now()
    services.cancel_order(actor=supervisor, order_id=order.pk, reason="盗号", now=now)
    with pytest.raises(UndoExpired) as late:
        services.restore_order(actor=supervisor, order_id=order.pk, now=now + timedelta(seconds=601))
    assert (late.value.code, late.value.status) == ("undo_expired", 409)
    assert Order.objects.get(pk=order.pk).status == "cancelled"
    assert assert_books_balance(merchant).pending_fen == 0


@pytest.mark.django_db
def test_undo_window_follows_the_setting(merchant, supervisor, settings):
    settings.CANCEL_UNDO_WINDOW_S = 30
    order = _unshipped(merchant)
    now = timezone.now()
    services.cancel_order(actor=supervisor, order_id=order.pk, reason="盗号", now=now)
    with pytest.raises(UndoExpired):
        services.restore_order(actor=supervisor, order_id=order.pk, now=now + timedelta(seconds=31))


@pytest.mark.django_db
def test_undo_is_refused_when_money_moved_on_the_order_since(merchant, supervisor):
    order = _unshipped(merchant)
    services.cancel_order(actor=supervisor, order_id=order.pk, reason="盗号")
    # nothing in the services moves a cancelled order's money; were anything to, the undo must not guess
    Movement.objects.create(merchant=merchant, bucket="available", kind="refund", amount_fen=-1, order=order)
    with pytest.raises(ChangedSinceCancel) as refused:
        services.restore_order(actor=supervisor, order_id=order.pk)
    assert refused.value.code == "changed_since_cancel"
    assert Order.objects.get(pk=order.pk).status == "cancelled"


@pytest.mark.django_db
def test_an_order_cancelled_outside_the_workbench_has_nothing_to_undo(merchant, supervisor):
    order = OrderFactory(merchant=merchant, status=Order.Status.CANCELLED)
    with pytest.raises(UndoUnavailable):
        services.restore_order(actor=supervisor, order_id=order.pk)


@pytest.mark.django_db
def test_partly_refunded_order_returns_only_what_escrow_still_holds(merchant, supervisor):
    order = _unshipped(merchant, amount_fen=10_000)
    with transaction.atomic():
        locked, source = services.lock_refundable(order_id=order.pk, amount_fen=3_000)
        services.refund_order(order=locked, source=source, amount_fen=3_000, now=timezone.now())
    assert assert_books_balance(merchant).pending_fen == 7_000

    cancellation = services.cancel_order(actor=supervisor, order_id=order.pk, reason="盗号")
    assert cancellation.returned_fen == 7_000
    order.refresh_from_db()
    assert order.refunded_fen == 10_000 and order.refundable_fen == 0
    assert assert_books_balance(merchant).pending_fen == 0

    services.restore_order(actor=supervisor, order_id=order.pk)
    order.refresh_from_db()
    assert (order.status, order.escrow_status, order.refunded_fen) == ("paid", "pending", 3_000)
    assert assert_books_balance(merchant).pending_fen == 7_000


@pytest.mark.django_db
def test_fully_refunded_unshipped_order_cancels_without_moving_money(merchant, supervisor):
    order = _unshipped(merchant, amount_fen=2_000)
    with transaction.atomic():
        locked, source = services.lock_refundable(order_id=order.pk, amount_fen=2_000)
        services.refund_order(order=locked, source=source, amount_fen=2_000, now=timezone.now())
    movements = Movement.objects.count()
    cancellation = services.cancel_order(actor=supervisor, order_id=order.pk, reason="盗号")
    assert cancellation.returned_fen == 0 and Movement.objects.count() == movements
    services.restore_order(actor=supervisor, order_id=order.pk)
    order.refresh_from_db()
    assert (order.status, order.escrow_status, order.refunded_fen) == ("paid", "refunded", 2_000)
    assert Movement.objects.count() == movements
    assert assert_books_balance(merchant).pending_fen == 0


@pytest.mark.django_db
def test_a_cancelled_order_cannot_be_shipped_changed_or_confirmed(merchant, merchant_user, agent):
    order = _unshipped(merchant)
    services.cancel_order(actor=agent, order_id=order.pk, reason="盗号")
    with pytest.raises(AlreadyShipped):
        services.ship_order(actor=merchant_user, order_id=order.pk, carrier="顺丰速运", tracking_no="SF1")
    with pytest.raises(AlreadyShipped):
        services.change_order(actor=agent, order_id=order.pk, address="上海市浦东新区张杨路 1 号")
    assert Order.objects.get(pk=order.pk).status == "cancelled"


@pytest.mark.django_db
def test_a_refund_asks_for_an_order_that_exists_and_no_more_than_is_left(merchant):
    order = _unshipped(merchant, amount_fen=5_000)
    with transaction.atomic():
        with pytest.raises(Order.DoesNotExist):
            services.lock_refundable(order_id=order.pk + 10_000, amount_fen=100)
    with transaction.atomic():
        with pytest.raises(AmountInvalid):
            services.lock_refundable(order_id=order.pk, amount_fen=5_001)
        locked, source = services.lock_refundable(order_id=order.pk, amount_fen=5_000)
    assert (locked.pk, locked.refundable_fen, source) == (order.pk, 5_000, "escrow")
    order.refresh_from_db()
    assert order.refunded_fen == 0
