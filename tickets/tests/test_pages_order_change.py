"""Order changes from the console: a form before shipment, the options after,
a change that meets a shipment refused whole."""

import pytest

from merchants import services as merchant_services
from merchants.models import Order, OrderChange, VariantStock
from merchants.tests.factories import OrderFactory, ShipmentFactory
from tickets.tests.factories import ticket_in_state


@pytest.fixture
def unshipped(buyer, merchant):
    return OrderFactory(buyer=buyer, merchant=merchant, status=Order.Status.PAID, shipping_address="杭州市西湖区文三路 90 号")


@pytest.mark.django_db
def test_before_shipment_the_agent_changes_address_and_colour(client, buyer, agent, unshipped):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=unshipped, category="order_change")
    VariantStock.objects.create(merchant=unshipped.merchant, sku="S1", variant="黑色", on_hand=1)  # if stock allows
    client.force_login(agent)
    page = client.get(f"/console/tickets/{ticket.pk}/")
    assert 'name="address"' in page.content.decode()
    response = client.post(f"/console/tickets/{ticket.pk}/order-change/",
                           {"address": "上海市浦东新区张杨路 500 号", "variant:S1": "黑色"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    unshipped.refresh_from_db()
    assert unshipped.shipping_address == "上海市浦东新区张杨路 500 号" and unshipped.items[0]["variant"] == "黑色"
    change = OrderChange.objects.get()
    assert change.ticket_id == ticket.pk and change.actor_id == agent.pk
    assert "张杨路 500 号" in response.content.decode()


@pytest.mark.django_db
def test_shipped_in_the_meantime_is_refused_whole_with_the_options(client, buyer, agent, unshipped, merchant_user):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=unshipped, category="order_change")
    merchant_services.ship_order(actor=merchant_user, order_id=unshipped.pk, carrier="顺丰速运", tracking_no="SF1")
    client.force_login(agent)
    response = client.post(f"/console/tickets/{ticket.pk}/order-change/", {"address": "北京市朝阳区建国路 88 号"},
                           HTTP_HX_REQUEST="true")
    assert response.status_code == 409
    html = response.content.decode()
    assert 'data-code="already_shipped"' in html
    assert 'class="applies"' in html  # the parcel is travelling: intercept and resend applies
    unshipped.refresh_from_db()
    assert unshipped.shipping_address == "杭州市西湖区文三路 90 号" and not OrderChange.objects.exists()


@pytest.mark.django_db
def test_delivered_order_shows_return_or_exchange_applies(client, buyer, agent, merchant):
    order = OrderFactory(buyer=buyer, merchant=merchant, status=Order.Status.DELIVERED)
    ShipmentFactory(order=order, status="delivered")
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order, category="order_change")
    client.force_login(agent)
    html = client.get(f"/console/tickets/{ticket.pk}/").content.decode()
    assert 'name="address"' not in html
    assert 'class="applies"' in html


@pytest.mark.django_db
def test_only_staff_change_orders(client, buyer, agent, unshipped):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=unshipped, category="order_change")
    client.force_login(buyer)
    assert client.post(f"/console/tickets/{ticket.pk}/order-change/", {"address": "北京市朝阳区建国路 88 号"}).status_code == 403
    unshipped.refresh_from_db()
    assert unshipped.shipping_address == "杭州市西湖区文三路 90 号"
