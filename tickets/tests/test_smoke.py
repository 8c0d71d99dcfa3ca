import pytest

from tickets.tests.factories import open_ticket


@pytest.mark.django_db
def test_buyer_opens_ticket_through_api(api, buyer, order):
    response = api(buyer).post(
        "/api/v1/tickets/",
        {"category": "logistics_delay", "subject": "快递没动", "body": "三天没更新", "order_id": order.pk},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "open"
    assert body["queue"] == "general"
    assert body["grade"] == "3"
    assert body["due_at"]


@pytest.mark.django_db
def test_ticket_factory(buyer, order):
    ticket = open_ticket(buyer=buyer, order=order)
    assert ticket.status == "open"
    assert ticket.messages.count() == 1
