"""After shipment the console offers intercept-and-resend as a real action: a
carrier intercept request recorded on the shipment and a compelled resend,
in one service call, with its API and console button."""

from __future__ import annotations

import pytest

from merchants.errors import AlreadyIntercepted, InterceptUnavailable
from merchants.models import Order, ResendTask, ShipmentIntercept
from merchants.tests.factories import OrderFactory, ShipmentFactory
from tickets import services
from tickets.errors import TicketNotFound
from tickets.models import Message, TicketEvent
from tickets.tests.factories import open_ticket

pytestmark = pytest.mark.django_db


def _shipped(buyer, merchant, *, shipment_status="in_transit", order_status=Order.Status.SHIPPED):
    order = OrderFactory(buyer=buyer, merchant=merchant, status=order_status)
    if shipment_status:
        ShipmentFactory(order=order, status=shipment_status)
    return order


def test_intercept_and_resend_records_both_and_tells_the_ticket(agent, buyer, merchant):
    order = _shipped(buyer, merchant)
    ticket = open_ticket(buyer=buyer, order=order)

    intercept = services.intercept_and_resend(actor=agent, ticket_id=ticket.pk, reason="发错尺码，买家要求拦截")

    assert intercept.shipment == order.shipment and intercept.requested_by == agent
    assert intercept.shipment_status_before == "in_transit"
    task = ResendTask.objects.get()
    assert intercept.resend_task == task and task.order == order and task.ticket_id == ticket.pk
    assert task.status == ResendTask.Status.OPEN and task.reason == "发错尺码，买家要求拦截"
    event = TicketEvent.objects.get(ticket=ticket, kind="intercept_resend")
    assert event.data["intercept_id"] == intercept.pk and event.data["task_id"] == task.pk
    assert Message.objects.filter(ticket=ticket, notice="parcel_intercepted").count() == 1

    with pytest.raises(AlreadyIntercepted):
        services.intercept_and_resend(actor=agent, ticket_id=ticket.pk, reason="再来一次")
    assert ResendTask.objects.count() == 1 and ShipmentIntercept.objects.count() == 1


@pytest.mark.parametrize(("order_status", "shipment_status"), [
    (Order.Status.PAID, None), (Order.Status.DELIVERED, "delivered"), (Order.Status.SHIPPED, "delivered"),
])
def test_intercept_needs_a_parcel_on_its_way(agent, buyer, merchant, order_status, shipment_status):
    order = _shipped(buyer, merchant, order_status=order_status, shipment_status=shipment_status)
    ticket = open_ticket(buyer=buyer, order=order)

    with pytest.raises(InterceptUnavailable) as refused:
        services.intercept_and_resend(actor=agent, ticket_id=ticket.pk, reason="拦截")

    assert refused.value.status == 409
    assert not ShipmentIntercept.objects.exists() and not ResendTask.objects.exists()
    assert not TicketEvent.objects.filter(kind="intercept_resend").exists()


def test_only_staff_intercept(buyer, other_buyer, merchant, merchant_user, agent):
    order = _shipped(buyer, merchant)
    ticket = open_ticket(buyer=buyer, order=order)
    with pytest.raises(TicketNotFound):
        services.intercept_and_resend(actor=other_buyer, ticket_id=ticket.pk, reason="拦截")
    from core.errors import PermissionDenied

    with pytest.raises(PermissionDenied):
        services.intercept_and_resend(actor=buyer, ticket_id=ticket.pk, reason="拦截")
    from core.errors import InvalidInput

    with pytest.raises(InvalidInput):
        services.intercept_and_resend(actor=agent, ticket_id=ticket.pk, reason="  ")
    assert not ShipmentIntercept.objects.exists()


def test_intercept_api(api, agent, buyer, merchant):
    order = _shipped(buyer, merchant)
    ticket = open_ticket(buyer=buyer, order=order)

    response = api(agent).post(f"/api/v1/tickets/{ticket.pk}/intercept-resend/", {"reason": "买家拒收"}, format="json")

    assert response.status_code == 201, response.json()
    body = response.json()
    task = ResendTask.objects.get()
    assert body["resend_task_id"] == task.pk and body["order_id"] == order.pk and body["ticket_id"] == ticket.pk
    again = api(agent).post(f"/api/v1/tickets/{ticket.pk}/intercept-resend/", {"reason": "再次"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "already_intercepted"
    detail = api(agent).get(f"/api/v1/orders/{order.pk}/").json()
    assert detail["intercept"]["resend_task_id"] == task.pk


def test_console_offers_the_button_and_runs_it(client, agent, buyer, merchant):
    order = _shipped(buyer, merchant)
    ticket = open_ticket(buyer=buyer, order=order)
    client.force_login(agent)

    page = client.get(f"/console/tickets/{ticket.pk}/").content.decode()
    assert "data-intercept-resend" in page

    response = client.post(f"/console/tickets/{ticket.pk}/intercept-resend/", {"reason": "发错颜色"})
    assert response.status_code == 200
    html = response.content.decode()
    assert "data-intercept-resend" not in html and "data-intercept=" in html
    assert ShipmentIntercept.objects.filter(order=order).exists()

    refused = client.post(f"/console/tickets/{ticket.pk}/intercept-resend/", {"reason": "再次"})
    assert refused.status_code == 409 and 'data-code="already_intercepted"' in refused.content.decode()


def test_console_variant_picker_shows_stock(client, agent, buyer, merchant):
    from merchants.models import VariantStock

    order = OrderFactory(buyer=buyer, merchant=merchant, status=Order.Status.PAID)
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="黑色", on_hand=0)
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="粉色", on_hand=3)
    ticket = open_ticket(buyer=buyer, order=order)
    client.force_login(agent)

    page = client.get(f"/console/tickets/{ticket.pk}/").content.decode()
    assert "data-variant-select" in page and 'data-on-hand="3"' in page

    refused = client.post(f"/console/tickets/{ticket.pk}/order-change/", {"variant:S1": "黑色",
                                                                            "address": order.shipping_address})
    assert refused.status_code == 409 and 'data-code="out_of_stock"' in refused.content.decode()
    changed = client.post(f"/console/tickets/{ticket.pk}/order-change/", {"variant:S1": "粉色",
                                                                            "address": order.shipping_address})
    assert changed.status_code == 200
    assert VariantStock.objects.get(variant="粉色").on_hand == 2
