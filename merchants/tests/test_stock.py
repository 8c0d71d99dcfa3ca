"""Order changes check stock: before shipment an address change always
applies, a colour or size change only "if stock allows" (the new variant has
the item's quantity on hand); the stock moves exactly, also in parallel."""

from __future__ import annotations

import pytest

from merchants import rules, services
from merchants.errors import OutOfStock
from merchants.models import Order, OrderChange, VariantStock
from merchants.selectors import variant_stock_for
from merchants.tests.factories import OrderFactory
from tests.concurrency import race, requires_postgres

ADDRESS = "杭州市西湖区文三路 90 号"


def _paid(merchant, *, qty: int = 1) -> Order:
    return OrderFactory(merchant=merchant, status=Order.Status.PAID, shipping_address=ADDRESS,
                        items=[{"sku": "S1", "name": "蓝牙耳机", "variant": "白色", "qty": qty, "price_fen": 19900}])


def _stock(merchant, variant: str) -> int:
    return VariantStock.objects.get(merchant=merchant, sku="S1", variant=variant).on_hand


def test_stock_allows_is_the_quantity_on_hand():
    assert rules.stock_allows(on_hand=2, qty=2) and not rules.stock_allows(on_hand=1, qty=2)
    assert not rules.stock_allows(on_hand=0, qty=1)


@pytest.mark.django_db
def test_a_variant_change_takes_the_new_variant_and_gives_the_old_back(agent, merchant):
    order = _paid(merchant, qty=2)
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="白色", on_hand=5)
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="黑色", on_hand=2)

    services.change_order(actor=agent, order_id=order.pk, variants={"S1": "黑色"})

    order.refresh_from_db()
    assert order.items[0]["variant"] == "黑色"
    assert (_stock(merchant, "黑色"), _stock(merchant, "白色")) == (0, 7)
    assert OrderChange.objects.get(order=order).changes == {"variant:S1": ["白色", "黑色"]}
    assert variant_stock_for(order=order) == {"S1": [("白色", 7), ("黑色", 0)]}


@pytest.mark.django_db
@pytest.mark.parametrize("on_hand", [None, 0, 1])
def test_out_of_stock_refuses_the_whole_change(agent, merchant, on_hand):
    order = _paid(merchant, qty=2)
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="白色", on_hand=5)
    if on_hand is not None:
        VariantStock.objects.create(merchant=merchant, sku="S1", variant="黑色", on_hand=on_hand)

    with pytest.raises(OutOfStock) as refused:
        services.change_order(actor=agent, order_id=order.pk, address="上海市浦东新区张杨路 500 号",
                              variants={"S1": "黑色"})

    assert refused.value.status == 409
    assert refused.value.extra == {"sku": "S1", "variant": "黑色", "on_hand": on_hand or 0, "needed": 2,
                                   "field": "variant"}
    order.refresh_from_db()
    assert order.items[0]["variant"] == "白色" and order.shipping_address == ADDRESS  # nothing half-applied
    assert _stock(merchant, "白色") == 5 and not OrderChange.objects.exists()


@pytest.mark.django_db
def test_an_address_change_always_applies(agent, merchant):
    order = _paid(merchant)  # no stock kept at all
    services.change_order(actor=agent, order_id=order.pk, address="上海市浦东新区张杨路 500 号")
    order.refresh_from_db()
    assert order.shipping_address == "上海市浦东新区张杨路 500 号" and not VariantStock.objects.exists()


@pytest.mark.django_db
def test_the_api_answers_out_of_stock_and_shows_stock_to_staff(api, agent, buyer, merchant):
    order = _paid(merchant)
    order.buyer = buyer
    order.save(update_fields=["buyer"])
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="黑色", on_hand=0)

    response = api(agent).post(f"/api/v1/orders/{order.pk}/changes/", {"variant": "黑色"}, format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "out_of_stock" and response.json()["on_hand"] == 0

    detail = api(agent).get(f"/api/v1/orders/{order.pk}/").json()
    assert detail["variant_stock"] == [{"sku": "S1", "variant": "黑色", "on_hand": 0}]
    assert detail["intercept"] is None
    assert api(buyer).get(f"/api/v1/orders/{order.pk}/").json()["variant_stock"] == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_parallel_changes_never_oversell_a_variant(agent, merchant):
    requires_postgres()
    orders = [_paid(merchant) for _ in range(8)]
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="白色", on_hand=0)
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="黑色", on_hand=3)

    results, errors = race(
        lambda i: services.change_order(actor=agent, order_id=orders[i].pk, variants={"S1": "黑色"}), 8)

    assert len(results) == 3 and len(errors) == 5 and all(isinstance(e, OutOfStock) for e in errors)
    assert (_stock(merchant, "黑色"), _stock(merchant, "白色")) == (0, 3)
    changed = [o for o in Order.objects.filter(pk__in=[o.pk for o in orders]) if o.items[0]["variant"] == "黑色"]
    assert len(changed) == 3 == OrderChange.objects.count()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_crossing_changes_keep_the_total_and_never_deadlock(agent, merchant):
    """Half the orders swap white → black, half black → white, at once: every
    change goes through, and the stock ends where it started."""
    requires_postgres()
    whites = [_paid(merchant) for _ in range(4)]
    blacks = []
    for _ in range(4):
        order = _paid(merchant)
        order.items = [{**order.items[0], "variant": "黑色"}]
        order.save(update_fields=["items"])
        blacks.append(order)
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="白色", on_hand=4)
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="黑色", on_hand=4)

    def act(i):
        if i % 2:
            return services.change_order(actor=agent, order_id=whites[i // 2].pk, variants={"S1": "黑色"})
        return services.change_order(actor=agent, order_id=blacks[i // 2].pk, variants={"S1": "白色"})

    results, errors = race(act, 8)

    assert errors == [] and len(results) == 8
    assert (_stock(merchant, "白色"), _stock(merchant, "黑色")) == (4, 4)


@pytest.mark.django_db
def test_the_merchant_keeps_its_stock_through_the_api(api, merchant, merchant_user, other_merchant_user, agent,
                                                      django_assert_max_num_queries):
    url = f"/api/v1/merchants/{merchant.pk}/stock/"
    client = api(merchant_user)

    made = client.post(url, {"sku": "S1", "variant": "黑色", "on_hand": 7}, format="json")
    assert made.status_code == 200 and made.json()["on_hand"] == 7
    again = client.post(url, {"sku": "S1", "variant": "黑色", "on_hand": 2}, format="json")
    assert again.json()["id"] == made.json()["id"] and _stock(merchant, "黑色") == 2

    assert client.post(url, {"sku": "S1", "variant": "黑色", "on_hand": -1}, format="json").status_code == 400
    assert client.post(url, {"sku": "", "variant": "黑色", "on_hand": 1}, format="json").status_code == 400
    assert api(other_merchant_user).post(url, {"sku": "S1", "variant": "黑色", "on_hand": 99},
                                         format="json").status_code == 404
    assert api(agent).post(url, {"sku": "S1", "variant": "黑色", "on_hand": 99}, format="json").status_code == 404
    assert _stock(merchant, "黑色") == 2

    for i in range(5):
        VariantStock.objects.create(merchant=merchant, sku=f"S{i + 2}", variant="白色", on_hand=i)
    staff = api(agent)
    with django_assert_max_num_queries(6):
        listed = staff.get(url).json()
    assert listed["count"] == 6 and listed["results"][0]["sku"] == "S1"
    assert staff.get(url, {"sku": "S3"}).json()["count"] == 1
    assert api(other_merchant_user).get(url).status_code == 404
