"""The buyer's chat pages: start a chat on an order, see the conversation, rate it."""

import pytest

from tickets.models import Rating, Ticket
from tickets.tests.factories import ticket_in_state


@pytest.mark.django_db
def test_only_buyers_use_the_chat_pages(client, agent, merchant_user):
    assert client.get("/chat/").status_code == 302
    for outsider in (agent, merchant_user):
        client.force_login(outsider)
        assert client.get("/chat/").status_code == 403


@pytest.mark.django_db
def test_buyer_starts_a_chat_on_an_order(client, buyer, order, other_order):
    client.force_login(buyer)
    home = client.get("/chat/").content.decode()
    assert order.order_no in home and other_order.order_no not in home
    response = client.post("/chat/start/", {"order_id": order.pk, "category": "logistics_delay", "body": "快递三天没动"})
    ticket = Ticket.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/chat/{ticket.pk}/"
    assert (ticket.channel, ticket.buyer_id, ticket.order_id, ticket.status) == ("chat", buyer.pk, order.pk, "open")
    room = client.get(f"/chat/{ticket.pk}/").content.decode()
    assert "快递三天没动" in room and f'data-ticket-id="{ticket.pk}"' in room


@pytest.mark.django_db
def test_bad_start_is_a_4xx_and_opens_nothing(client, buyer, other_order):
    client.force_login(buyer)
    assert client.post("/chat/start/", {"order_id": other_order.pk, "category": "other", "body": "x"}).status_code == 400
    assert client.post("/chat/start/", {"category": "teleport", "body": "x"}).status_code == 400
    assert client.post("/chat/start/", {"order_id": "abc", "category": "other", "body": "x"}).status_code == 400
    assert not Ticket.objects.exists()


@pytest.mark.django_db
def test_other_buyers_chat_is_404(client, buyer, other_buyer, agent, order):
    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    client.force_login(other_buyer)
    assert client.get(f"/chat/{ticket.pk}/").status_code == 404
    assert client.post(f"/chat/{ticket.pk}/rate/", {"score": 1}).status_code == 404


@pytest.mark.django_db
def test_rate_after_resolution_once(client, buyer, agent, order):
    ticket = ticket_in_state("resolved", buyer=buyer, agent=agent, order=order)
    client.force_login(buyer)
    assert 'name="score"' in client.get(f"/chat/{ticket.pk}/").content.decode()
    assert client.post(f"/chat/{ticket.pk}/rate/", {"score": "x"}).status_code == 400
    ok = client.post(f"/chat/{ticket.pk}/rate/", {"score": 9, "comment": "很快"})
    assert ok.status_code == 200 and "data-rated" in ok.content.decode()
    assert Rating.objects.get(ticket=ticket).score == 9
    assert client.post(f"/chat/{ticket.pk}/rate/", {"score": 3}).status_code == 409
    assert 'name="score"' not in client.get(f"/chat/{ticket.pk}/").content.decode()
