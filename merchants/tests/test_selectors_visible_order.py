"""``visible_order``: the order ``orders_visible_to`` would find, in one
hand-written statement, with its merchant and shipment in place."""

import pytest

from accounts.models import User
from accounts.roles import is_buyer
from merchants.models import Order
from merchants.selectors import get_order_for, orders_visible_to, visible_order
from merchants.tests.factories import OrderFactory, make_merchant_staff


@pytest.mark.django_db
def test_scoped_as_orders_visible_to(buyer, other_buyer, order, other_order, merchant_user, other_merchant_user,
                                     agent):
    nobody = User.objects.create(username="no_role")
    unattached = make_merchant_staff()
    unattached.merchant_staff.delete()
    unattached = User.objects.get(pk=unattached.pk)
    sees = {buyer: {order}, other_buyer: {other_order}, merchant_user: {order},
            other_merchant_user: {other_order}, agent: {order, other_order}, nobody: set(), unattached: set()}
    for user, expected in sees.items():
        found = {wanted for wanted in (order, other_order) if visible_order(user=user, order_id=wanted.pk)}
        assert found == expected, user.username
        # the queryset every list reads says the same
        assert set(orders_visible_to(user=user).filter(pk__in=[order.pk, other_order.pk])) == expected, user.username
    assert visible_order(user=buyer, order_id=order.pk).pk == order.pk
    assert visible_order(user=agent, order_id=424242) is None


@pytest.mark.django_db
def test_the_order_carries_its_merchant_and_shipment(buyer, order, django_assert_num_queries):
    assert is_buyer(buyer)  # the role's own query, before the order's
    with django_assert_num_queries(1):
        found = visible_order(user=buyer, order_id=order.pk)
        assert found.merchant.name == order.merchant.name
        assert found.shipment.tracking_no == order.shipment.tracking_no
        assert found.shipment.order is found
        assert found.items == order.items and found.amount_fen == order.amount_fen
        assert found.placed_at == order.placed_at


@pytest.mark.django_db
def test_an_order_not_shipped_has_no_shipment_without_asking_again(buyer, merchant, django_assert_num_queries):
    unshipped = OrderFactory(buyer=buyer, merchant=merchant, status="paid")
    assert is_buyer(buyer)
    with django_assert_num_queries(1):
        found = visible_order(user=buyer, order_id=unshipped.pk)
        with pytest.raises(Order.shipment.RelatedObjectDoesNotExist):
            found.shipment
    assert get_order_for(user=buyer, order_id=unshipped.pk).pk == unshipped.pk
