"""Compelled resends (deadline, fulfil, missed sweep → credit and escalation),
order changes before shipment (and the options after), credit scores."""

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from merchants import selectors as merchant_selectors
from merchants import services as merchant_services
from merchants.errors import AlreadyShipped, NotFound, TaskNotOpen
from merchants.models import CreditScore, Merchant, Order, OrderChange, ResendTask, VariantStock
from merchants.tests.factories import OrderFactory, ShipmentFactory
from tickets import services
from tickets.errors import InvalidInput, PermissionDenied
from tickets.models import TicketEvent
from tickets.tests.factories import ticket_in_state


def _task(order, ticket, *, hours=48):
    with transaction.atomic():
        return merchant_services.create_resend_task(order=order, ticket_id=ticket.pk, reason="丢件补发", now=timezone.now(),
                                                    deadline=timedelta(hours=hours))


@pytest.mark.django_db
def test_merchant_fulfils_a_resend_task(api, buyer, order, agent, merchant, merchant_user, other_merchant_user):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    task = _task(order, ticket)
    assert task.deadline_at - task.created_at == timedelta(hours=48)
    listed = api(merchant_user).get(f"/api/v1/merchants/{merchant.pk}/tasks/").json()["results"]
    assert [(t["id"], t["kind"], t["status"]) for t in listed] == [(task.pk, "compelled_resend", "open")]
    assert api(other_merchant_user).get(f"/api/v1/merchants/{merchant.pk}/tasks/").status_code == 404
    path = f"/api/v1/merchants/{merchant.pk}/tasks/{task.pk}/fulfil/"
    assert api(other_merchant_user).post(path, {"carrier": "顺丰速运", "tracking_no": "SF1"}, format="json").status_code == 404
    assert api(merchant_user).post(path, {"carrier": "顺丰速运", "tracking_no": "SF 1!"}, format="json").status_code == 400
    done = api(merchant_user).post(path, {"carrier": "顺丰速运", "tracking_no": "SF1234567890"}, format="json")
    assert done.status_code == 200 and done.json()["status"] == "fulfilled"
    again = api(merchant_user).post(path, {"carrier": "顺丰速运", "tracking_no": "SF1234567890"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "task_not_open"
    assert ResendTask.objects.get().tracking_no == "SF1234567890"


@pytest.mark.django_db
def test_missed_deadline_lowers_credit_and_escalates_once(buyer, order, agent, merchant):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    task = _task(order, ticket, hours=-1)
    assert services.sweep_missed_resends() == [ticket.pk]
    assert services.sweep_missed_resends() == []
    task.refresh_from_db()
    assert task.status == "missed" and task.missed_at is not None
    ticket.refresh_from_db()
    assert ticket.tier == 2
    assert TicketEvent.objects.filter(ticket=ticket, kind="resend_missed").count() == 1
    credit = CreditScore.objects.get(merchant=merchant)
    assert credit.resend_compliance == 0.0 and credit.score < 100
    assert Merchant.objects.get(pk=merchant.pk).credit_score == credit.score


@pytest.mark.django_db
def test_missed_task_cannot_be_fulfilled(buyer, order, agent, merchant_user):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    task = _task(order, ticket, hours=-1)
    services.sweep_missed_resends()
    with pytest.raises(TaskNotOpen):
        merchant_services.fulfil_resend_task(actor=merchant_user, task_id=task.pk, carrier="顺丰速运", tracking_no="SF1")


@pytest.mark.django_db
def test_fulfil_refusals(buyer, order, agent, merchant_user):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    task = _task(order, ticket)
    with pytest.raises(NotFound):
        merchant_services.fulfil_resend_task(actor=agent, task_id=task.pk, carrier="顺丰", tracking_no="SF1")
    with pytest.raises(InvalidInput):
        merchant_services.fulfil_resend_task(actor=merchant_user, task_id=task.pk, carrier="", tracking_no="SF1")
    with pytest.raises(NotFound):
        merchant_services.fulfil_resend_task(actor=merchant_user, task_id=987654, carrier="顺丰", tracking_no="SF1")
    assert ResendTask.objects.get().status == "open"


@pytest.mark.django_db
def test_credit_components(merchant):
    now = timezone.now()
    on_time = OrderFactory(merchant=merchant, placed_at=now - timedelta(days=3))
    ShipmentFactory(order=on_time, shipped_at=on_time.placed_at + timedelta(hours=10))
    late = OrderFactory(merchant=merchant, placed_at=now - timedelta(days=5))
    ShipmentFactory(order=late, shipped_at=late.placed_at + timedelta(hours=72))
    rate, shipping, compliance = merchant_selectors.credit_components(merchant_id=merchant.pk, now=now)
    assert (rate, shipping, compliance) == (0.0, 0.5, 1.0)
    assert merchant_services.credit_score_from(rate, shipping, compliance) == 85
    assert merchant_services.credit_score_from(0.2, 0.0, 0.0) == 0
    assert merchant_services.recompute_credit_scores(now=now) == Merchant.objects.count()


@pytest.mark.django_db
def test_agent_changes_address_and_variant_before_shipment(api, agent, merchant, buyer):
    order = OrderFactory(merchant=merchant, buyer=buyer, status=Order.Status.PAID, shipping_address="杭州市西湖区文三路 90 号")
    VariantStock.objects.create(merchant=merchant, sku="S1", variant="黑色", on_hand=2)  # "if stock allows"
    response = api(agent).post(f"/api/v1/orders/{order.pk}/changes/",
                               {"address": "上海市浦东新区张杨路 500 号", "variant": "黑色"}, format="json")
    assert response.status_code == 201, response.json()
    order.refresh_from_db()
    assert order.shipping_address == "上海市浦东新区张杨路 500 号" and order.items[0]["variant"] == "黑色"
    change = OrderChange.objects.get()
    assert change.changes == {"address": ["杭州市西湖区文三路 90 号", "上海市浦东新区张杨路 500 号"],
                              "variant:S1": ["白色", "黑色"]}
    assert api(buyer).post(f"/api/v1/orders/{order.pk}/changes/", {"address": "北京市朝阳区建国路"}, format="json").status_code == 403
    assert api(agent).post(f"/api/v1/orders/{order.pk}/changes/", {"variant": {"NOPE": "x"}}, format="json").status_code == 400
    assert api(agent).post(f"/api/v1/orders/{order.pk}/changes/", {}, format="json").status_code == 400
    assert api(agent).post("/api/v1/orders/99999/changes/", {"address": "北京市朝阳区建国路"}, format="json").status_code == 404


@pytest.mark.django_db
def test_change_after_shipment_is_409_with_the_option_that_applies(api, agent, merchant):
    in_transit = OrderFactory(merchant=merchant, status=Order.Status.SHIPPED)
    ShipmentFactory(order=in_transit)
    response = api(agent).post(f"/api/v1/orders/{in_transit.pk}/changes/", {"address": "北京市朝阳区建国路 88 号"}, format="json")
    assert response.status_code == 409
    body = response.json()
    assert body["code"] == "already_shipped" and body["applies"] == "intercept_and_resend"
    assert body["options"] == ["intercept_and_resend", "return_or_exchange_on_receipt"]
    delivered = OrderFactory(merchant=merchant, status=Order.Status.DELIVERED)
    ShipmentFactory(order=delivered, status="delivered")
    response = api(agent).post(f"/api/v1/orders/{delivered.pk}/changes/", {"address": "北京市朝阳区建国路 88 号"}, format="json")
    assert response.json()["applies"] == "return_or_exchange_on_receipt"
    assert not OrderChange.objects.exists()


@pytest.mark.django_db
def test_ship_then_change_is_refused_never_half_applied(agent, merchant, merchant_user, other_merchant_user):
    order = OrderFactory(merchant=merchant, status=Order.Status.PAID)
    with pytest.raises(NotFound):
        merchant_services.ship_order(actor=other_merchant_user, order_id=order.pk, carrier="顺丰", tracking_no="SF9")
    merchant_services.ship_order(actor=merchant_user, order_id=order.pk, carrier="顺丰速运", tracking_no="SF9")
    with pytest.raises(AlreadyShipped):
        merchant_services.change_order(actor=agent, order_id=order.pk, address="北京市朝阳区建国路 88 号")
    order.refresh_from_db()
    assert order.shipping_address != "北京市朝阳区建国路 88 号"
    with pytest.raises(PermissionDenied):
        merchant_services.change_order(actor=merchant_user, order_id=order.pk, address="北京市朝阳区建国路 88 号")
