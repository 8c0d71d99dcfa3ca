"""Parallel payouts on PostgreSQL never take out more than withdrawable."""

import pytest

from merchants import services
from merchants.errors import ExceedsWithdrawable
from merchants.models import MerchantAccount, Payout
from merchants.tests.factories import fund
from tests.concurrency import race, requires_postgres

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_parallel_payouts_never_exceed_withdrawable(merchant, merchant_user):
    requires_postgres()
    fund(merchant, available_fen=10_000, deposit_fen=1_000)
    MerchantAccount.objects.filter(merchant=merchant).update(held_fen=3_000)  # 2,000 frozen → 8,000 withdrawable

    results, errors = race(
        lambda i: services.request_payout(
            actor=merchant_user, merchant_id=merchant.pk, amount_fen=3_000, idempotency_key=f"k{i}"
        ),
        8,
    )

    assert len(results) == 2  # 2 × 3,000 fit in 8,000; a third would not
    assert len(errors) == 6 and all(isinstance(e, ExceedsWithdrawable) for e in errors)
    account = MerchantAccount.objects.get(merchant=merchant)
    assert account.available_fen == 4_000
    assert sum(Payout.objects.values_list("amount_fen", flat=True)) == 6_000


def test_same_key_from_eight_threads_makes_one_payout(merchant, merchant_user):
    requires_postgres()
    fund(merchant, available_fen=10_000)

    results, errors = race(
        lambda i: services.request_payout(
            actor=merchant_user, merchant_id=merchant.pk, amount_fen=1_000, idempotency_key="same"
        ),
        8,
    )

    assert errors == []
    assert len({payout.pk for payout, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert MerchantAccount.objects.get(merchant=merchant).available_fen == 9_000


def test_change_racing_shipment_is_all_or_nothing(agent, merchant, merchant_user):
    requires_postgres()
    from merchants.errors import AlreadyShipped
    from merchants.models import Order, OrderChange
    from merchants.tests.factories import OrderFactory

    outcomes = set()
    for round_no in range(6):
        order = OrderFactory(merchant=merchant, status=Order.Status.PAID, shipping_address="杭州市西湖区文三路 90 号")
        new_address = f"上海市浦东新区张杨路 {round_no} 号"

        def act(i, order=order, new_address=new_address):
            if i == 0:
                return services.change_order(actor=agent, order_id=order.pk, address=new_address)
            return services.ship_order(actor=merchant_user, order_id=order.pk, carrier="顺丰速运",
                                       tracking_no=f"SF{order.pk}")

        results, errors = race(act, 2)
        order.refresh_from_db()
        assert order.status == "shipped"  # shipping always goes through
        changed = OrderChange.objects.filter(order=order).exists()
        if changed:
            assert errors == [] and order.shipping_address == new_address
            outcomes.add("changed_first")
        else:
            assert len(errors) == 1 and isinstance(errors[0], AlreadyShipped)
            assert order.shipping_address == "杭州市西湖区文三路 90 号"
            outcomes.add("shipped_first")
    assert outcomes  # each round ended in one whole outcome


def _books_balance(merchant) -> int:
    from django.db.models import F, Sum

    from merchants.models import Movement, Order

    account = MerchantAccount.objects.get(merchant=merchant)
    moved = Movement.objects.filter(merchant=merchant, bucket="pending").aggregate(t=Sum("amount_fen"))["t"] or 0
    in_escrow = Order.objects.filter(merchant=merchant, escrow_status="pending").aggregate(
        t=Sum(F("amount_fen") - F("refunded_fen")))["t"] or 0
    assert account.pending_fen == moved == in_escrow
    return account.pending_fen


def test_eight_parallel_cancels_return_the_escrow_once(merchant, supervisor):
    requires_postgres()
    from merchants.errors import AlreadyCancelled
    from merchants.models import Order, OrderCancellation
    from merchants.tests.factories import paid_order

    order = paid_order(merchant=merchant, amount_fen=6_600, status=Order.Status.PAID)

    results, errors = race(lambda i: services.cancel_order(actor=supervisor, order_id=order.pk, reason="盗号"), 8)

    assert len(results) == 1
    assert len(errors) == 7 and all(isinstance(e, AlreadyCancelled) for e in errors)
    assert OrderCancellation.objects.filter(order=order).count() == 1
    assert _books_balance(merchant) == 0


def test_cancel_racing_its_undo_always_leaves_the_books_whole(merchant, supervisor, agent):
    requires_postgres()
    from merchants.errors import AlreadyCancelled, NotCancelled
    from merchants.models import Order
    from merchants.tests.factories import paid_order

    outcomes = set()
    for _ in range(6):
        order = paid_order(merchant=merchant, amount_fen=3_000, status=Order.Status.PAID)
        services.cancel_order(actor=supervisor, order_id=order.pk, reason="盗号")

        def act(i, order=order):
            if i % 2 == 0:
                return services.restore_order(actor=agent, order_id=order.pk)
            return services.cancel_order(actor=supervisor, order_id=order.pk, reason="再次取消")

        results, errors = race(act, 4)  # two undos and two cancels at once
        assert all(isinstance(e, AlreadyCancelled | NotCancelled) for e in errors), errors
        order.refresh_from_db()
        active = order.cancellations.filter(restored_at__isnull=True).count()
        assert active == (1 if order.status == "cancelled" else 0)
        # every success flips the order between paid and cancelled, every refusal flips nothing
        restored = [r for r in results if isinstance(r, Order)]
        assert order.cancellations.filter(restored_at__isnull=False).count() == len(restored)
        assert order.cancellations.count() == 1 + len(results) - len(restored)
        assert (len(results) % 2 == 0) == (order.status == "cancelled")
        outcomes.add(order.status)
        _books_balance(merchant)
    assert outcomes <= {"paid", "cancelled"}


def test_parallel_undos_restore_once(merchant, supervisor):
    requires_postgres()
    from merchants.errors import NotCancelled
    from merchants.models import Order
    from merchants.tests.factories import paid_order

    order = paid_order(merchant=merchant, amount_fen=4_500, status=Order.Status.PAID)
    services.cancel_order(actor=supervisor, order_id=order.pk, reason="盗号")

    results, errors = race(lambda i: services.restore_order(actor=supervisor, order_id=order.pk), 6)

    assert len(results) == 1 and len(errors) == 5 and all(isinstance(e, NotCancelled) for e in errors)
    assert Order.objects.get(pk=order.pk).status == "paid"
    assert _books_balance(merchant) == 4_500
