"""Orders API: scoped by who asks, with items, tracking and the viewer's tickets."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from merchants.models import ShipmentEvent
from merchants.tests.factories import OrderFactory, ShipmentFactory


@pytest.mark.django_db
def test_orders_list_scoping(api, buyer, other_buyer, order, other_order, merchant_user, other_merchant_user, agent):
    def ids(user, query=""):
        response = api(user).get(f"/api/v1/orders/{query}")
        assert response.status_code == 200
        return {row["id"] for row in response.json()["results"]}

    assert ids(buyer) == {order.pk}
    assert ids(other_buyer) == {other_order.pk}
    assert ids(merchant_user) == {order.pk}
    assert ids(other_merchant_user) == {other_order.pk}
    assert ids(agent) == {order.pk, other_order.pk}
    assert ids(agent, f"?buyer={buyer.pk}") == {order.pk}
    assert ids(agent, f"?merchant={other_order.merchant_id}") == {other_order.pk}
    assert ids(agent, "?status=shipped") == {order.pk, other_order.pk}
    # filters never widen a scope
    assert ids(buyer, f"?buyer={other_buyer.pk}") == set()


@pytest.mark.django_db
def test_order_fields(api, buyer, order):
    row = api(buyer).get("/api/v1/orders/").json()["results"][0]
    assert {"id", "order_no", "buyer_id", "merchant_id", "amount_fen", "status", "escrow_status", "shipment"} <= set(row)
    assert row["amount_fen"] == 19900 and row["escrow_status"] == "pending"
    assert row["shipment"]["carrier"] == "顺丰速运"


@pytest.mark.django_db
def test_order_detail_items_and_tracking(api, buyer, other_buyer, order, agent, other_merchant_user):
    ShipmentEvent.objects.create(shipment=order.shipment, occurred_at=order.placed_at, location="杭州", description="已揽收")
    path = f"/api/v1/orders/{order.pk}/"
    body = api(buyer).get(path).json()
    assert body["items"][0]["name"] == "蓝牙耳机"
    assert body["shipment"]["events"][0]["description"] == "已揽收"
    assert body["tickets"] == []
    for outsider in (other_buyer, other_merchant_user):
        response = api(outsider).get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert api(agent).get("/api/v1/orders/424242/").status_code == 404


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["buyer=x", "merchant=1.5", "status=lost", "page=-3"])
def test_bad_order_filters(api, agent, query):
    response = api(agent).get(f"/api/v1/orders/?{query}")
    assert response.status_code == 400 and response.json()["code"] == "invalid"


@pytest.mark.django_db
def test_order_list_query_count_is_flat(api, agent, django_assert_max_num_queries):
    for _ in range(10):
        ShipmentFactory()
    client = api(agent)
    with CaptureQueriesContext(connection) as ctx:
        client.get("/api/v1/orders/?page_size=200")
    for _ in range(90):
        ShipmentFactory(order=OrderFactory())
    with django_assert_max_num_queries(len(ctx.captured_queries)):
        response = client.get("/api/v1/orders/?page_size=200")
    assert response.json()["count"] == 100
