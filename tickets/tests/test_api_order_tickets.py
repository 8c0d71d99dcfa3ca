"""The order detail lists the order's tickets the viewer may see."""

import pytest

from merchants.models import ShipmentEvent
from tickets.tests.factories import open_ticket, ticket_in_state


@pytest.mark.django_db
def test_order_detail_lists_the_viewers_tickets(api, buyer, other_buyer, order, agent, merchant_user, other_merchant_user):
    ShipmentEvent.objects.create(shipment=order.shipment, occurred_at=order.placed_at, location="杭州", description="已揽收")
    buyer_only = open_ticket(buyer=buyer, order=order)
    with_merchant = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    path = f"/api/v1/orders/{order.pk}/"
    body = api(buyer).get(path).json()
    assert body["items"][0]["name"] == "蓝牙耳机"
    assert body["shipment"]["events"][0]["description"] == "已揽收"
    assert {t["id"] for t in body["tickets"]} == {buyer_only.pk, with_merchant.pk}
    merchant_view = api(merchant_user).get(path).json()
    assert {t["id"] for t in merchant_view["tickets"]} == {with_merchant.pk}
    for outsider in (other_buyer, other_merchant_user):
        response = api(outsider).get(path)
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert api(agent).get("/api/v1/orders/424242/").status_code == 404


