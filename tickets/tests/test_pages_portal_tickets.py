"""The merchant portal's ticket pages: only the merchant's party tickets
(waiting on it first), the conversation without internal notes, replies,
accepting or contesting a claim with images, and 404 for anything else."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from merchants.tests.factories import OrderFactory
from tickets import services
from tickets.models import Evidence, Message, Ticket, TicketEvent
from tickets.tests.factories import open_ticket, ticket_in_state

HTMX = {"HTTP_HX_REQUEST": "true"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def portal(client, merchant_user):
    client.force_login(merchant_user)
    return client


@pytest.fixture
def waiting(buyer, agent, order):
    return ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order, category="wrong_item",
                           subject="发错颜色了")


@pytest.fixture
def others_ticket(other_buyer, agent, other_merchant):
    other_order = OrderFactory(buyer=other_buyer, merchant=other_merchant)
    return ticket_in_state("waiting_merchant", buyer=other_buyer, agent=agent, order=other_order,
                           subject="别家的工单")


def _row_ids(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-ticket-id="(\d+)"', html)]


# --- the list ------------------------------------------------------------------------


@pytest.mark.django_db
def test_list_shows_only_the_merchants_party_tickets_waiting_first(portal, buyer, agent, order, waiting,
                                                                    others_ticket):
    answered = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order, subject="已回复的")
    services.post_message(actor=agent, ticket_id=answered.pk, body="先处理")
    services.transition_ticket(actor=agent, ticket_id=answered.pk, name="resume")
    later_waiting = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order, subject="后来的")
    buyer_only = open_ticket(buyer=buyer, order=order, subject="只和买家有关")
    response = portal.get("/merchant/tickets/")
    assert response.status_code == 200
    ids = _row_ids(response.content.decode())
    assert ids == [later_waiting.pk, waiting.pk, answered.pk]
    assert buyer_only.pk not in ids and others_ticket.pk not in ids
    html = response.content.decode()
    assert "别家的工单" not in html and "只和买家有关" not in html
    only_waiting = _row_ids(portal.get("/merchant/tickets/", {"show": "waiting"}).content.decode())
    assert only_waiting == [later_waiting.pk, waiting.pk]
    summary = portal.get("/merchant/tickets/summary/", **HTMX).content.decode()
    assert "<html" not in summary and "<b>2</b>" in summary and f"/merchant/tickets/{waiting.pk}/" in summary


@pytest.mark.django_db
def test_list_queries_do_not_grow_with_tickets(portal, buyer, agent, order, django_assert_max_num_queries):
    def count() -> int:
        portal.get("/merchant/tickets/")
        with django_assert_max_num_queries(12) as captured:
            assert portal.get("/merchant/tickets/").status_code == 200
        return len(captured.captured_queries)

    ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    one = count()
    for _ in range(10):
        ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    assert count() == one


# --- access ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_another_merchants_ticket_is_404(portal, others_ticket, buyer, order):
    buyer_only = open_ticket(buyer=buyer, order=order)
    for ticket in (others_ticket, buyer_only):
        assert portal.get(f"/merchant/tickets/{ticket.pk}/").status_code == 404
        assert portal.get(f"/merchant/tickets/{ticket.pk}/messages/", {"after_seq": 0}, **HTMX).status_code == 404
        assert portal.post(f"/merchant/tickets/{ticket.pk}/reply/", {"body": "你好"}, **HTMX).status_code == 404
        response = portal.post(f"/merchant/tickets/{ticket.pk}/respond/", {"action": "accept_refund"}, **HTMX)
        assert response.status_code == 404
    assert portal.get("/merchant/tickets/987654/").status_code == 404
    assert not Message.objects.filter(author_role="merchant").exists()
    assert not TicketEvent.objects.filter(kind__startswith="merchant_").exists()


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["agent", "buyer"])
def test_staff_and_buyers_get_403_and_anonymous_the_login(client, request, who, waiting):
    for path in ("/merchant/tickets/", f"/merchant/tickets/{waiting.pk}/"):
        assert client.get(path).status_code == 302
    client.force_login(request.getfixturevalue(who))
    assert client.get("/merchant/tickets/").status_code == 403
    assert client.get(f"/merchant/tickets/{waiting.pk}/").status_code == 403
    assert client.post(f"/merchant/tickets/{waiting.pk}/respond/", {"action": "accept_refund"}).status_code == 403
    assert Ticket.objects.get(pk=waiting.pk).status == "waiting_merchant"


# --- one ticket --------------------------------------------------------------------------


@pytest.mark.django_db
def test_detail_shows_the_conversation_without_internal_notes(portal, agent, waiting):
    services.post_message(actor=agent, ticket_id=waiting.pk, body="商家的颜色核对一下", internal=False)
    services.post_message(actor=agent, ticket_id=waiting.pk, body="内部：这家店上月也发错过", internal=True)
    response = portal.get(f"/merchant/tickets/{waiting.pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "商家的颜色核对一下" in html and "这家店上月也发错过" not in html
    assert 'name="action" value="accept_refund"' in html and 'name="action" value="contest"' in html
    assert 'enctype="multipart/form-data"' in html and 'id="reply-form"' in html
    polled = portal.get(f"/merchant/tickets/{waiting.pk}/messages/", {"after_seq": 1}, **HTMX).content.decode()
    assert "商家的颜色核对一下" in polled and "这家店上月也发错过" not in polled


@pytest.mark.django_db
def test_reply_creates_a_message_and_resumes_the_ticket(portal, merchant_user, waiting):
    response = portal.post(f"/merchant/tickets/{waiting.pk}/reply/", {"body": "我们核实一下仓库记录", "client_msg_id": "m-1"},
                           **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert "<html" not in html and "我们核实一下仓库记录" in html and "msg-merchant" in html
    message = Message.objects.get(ticket=waiting, body="我们核实一下仓库记录")
    assert (message.author_id, message.author_role, message.internal) == (merchant_user.pk, "merchant", False)
    assert Ticket.objects.get(pk=waiting.pk).status == "assigned"
    empty = portal.post(f"/merchant/tickets/{waiting.pk}/reply/", {"body": "  "}, **HTMX)
    assert empty.status_code == 400 and empty["HX-Retarget"] == "#reply-error"
    assert "inline-error" in empty.content.decode()
    plain = portal.post(f"/merchant/tickets/{waiting.pk}/reply/", {"body": "再补充一句"})
    assert plain.status_code == 302 and Message.objects.filter(body="再补充一句").exists()


@pytest.mark.django_db
def test_contest_with_an_image_creates_evidence_and_resumes(portal, merchant_user, waiting):
    response = portal.post(
        f"/merchant/tickets/{waiting.pk}/respond/",
        {"action": "contest", "text": "发货前拍照确认是白色",
         "images": [SimpleUploadedFile("white.png", PNG, content_type="image/png")]},
        **HTMX,
    )
    assert response.status_code == 200
    assert response["HX-Redirect"] == f"/merchant/tickets/{waiting.pk}/?answered=1"
    evidence = Evidence.objects.get()
    assert (evidence.ticket_id, evidence.uploaded_by_id, evidence.size) == (waiting.pk, merchant_user.pk, len(PNG))
    event = TicketEvent.objects.get(ticket=waiting, kind="merchant_contest")
    assert event.data == {"text": "发货前拍照确认是白色", "evidence_ids": [evidence.pk]}
    assert Ticket.objects.get(pk=waiting.pk).status == "assigned"
    page = portal.get(f"/merchant/tickets/{waiting.pk}/?answered=1").content.decode()
    assert f'src="/api/v1/evidence/{evidence.pk}/"' in page and "发货前拍照确认是白色" in page
    image = portal.get(f"/api/v1/evidence/{evidence.pk}/")
    assert image.status_code == 200 and b"".join(image.streaming_content) == PNG


@pytest.mark.django_db
def test_accept_the_refund(portal, waiting):
    response = portal.post(f"/merchant/tickets/{waiting.pk}/respond/", {"action": "accept_refund"})
    assert response.status_code == 302 and response["Location"].endswith("?answered=1")
    assert TicketEvent.objects.filter(ticket=waiting, kind="merchant_accept_refund").exists()
    assert Message.objects.filter(ticket=waiting, author_role="merchant", body="商家同意退款。").exists()
    assert Ticket.objects.get(pk=waiting.pk).status == "assigned"


@pytest.mark.django_db
@pytest.mark.parametrize("data, status, code", [
    ({"action": "contest", "text": ""}, 400, "invalid"),
    ({"action": "shrug"}, 400, "invalid"),
    ({"action": "contest", "text": "x" * 2001}, 400, "invalid"),
    ({"action": "contest", "text": "见图", "images": "fake"}, 400, "invalid"),
])
def test_bad_answers_are_inline_4xx(portal, waiting, data, status, code):
    if data.get("images") == "fake":
        data = {**data, "images": [SimpleUploadedFile("x.png", b"<script>", content_type="image/png")]}
    response = portal.post(f"/merchant/tickets/{waiting.pk}/respond/", data, **HTMX)
    assert response.status_code == status
    assert response["HX-Retarget"] == "#answer-error"
    assert f'data-code="{code}"' in response.content.decode()
    assert not Evidence.objects.exists() and Ticket.objects.get(pk=waiting.pk).status == "waiting_merchant"


@pytest.mark.django_db
def test_too_many_or_too_large_images_are_refused(portal, waiting):
    too_many = [SimpleUploadedFile(f"{i}.png", PNG, content_type="image/png") for i in range(5)]
    response = portal.post(f"/merchant/tickets/{waiting.pk}/respond/",
                           {"action": "contest", "text": "见图", "images": too_many}, **HTMX)
    assert response.status_code == 400
    big = SimpleUploadedFile("big.png", PNG + b"\x00" * (5 * 1024 * 1024), content_type="image/png")
    response = portal.post(f"/merchant/tickets/{waiting.pk}/respond/",
                           {"action": "contest", "text": "见图", "images": [big]}, **HTMX)
    assert response.status_code == 400 and "big.png" in response.content.decode()
    assert not Evidence.objects.exists()


@pytest.mark.django_db
def test_answer_on_a_resolved_ticket_is_a_409(portal, agent, waiting):
    services.transition_ticket(actor=agent, ticket_id=waiting.pk, name="resume")
    services.transition_ticket(actor=agent, ticket_id=waiting.pk, name="resolve")
    page = portal.get(f"/merchant/tickets/{waiting.pk}/").content.decode()
    assert 'value="accept_refund"' not in page
    response = portal.post(f"/merchant/tickets/{waiting.pk}/respond/", {"action": "accept_refund"}, **HTMX)
    assert response.status_code == 409 and 'data-code="conflict"' in response.content.decode()


@pytest.mark.django_db
def test_detail_queries_do_not_grow_with_messages(portal, agent, waiting, django_assert_max_num_queries):
    path = f"/merchant/tickets/{waiting.pk}/"

    def count() -> int:
        portal.get(path)
        with django_assert_max_num_queries(14) as captured:
            assert portal.get(path).status_code == 200
        return len(captured.captured_queries)

    few = count()
    for i in range(20):
        services.post_message(actor=agent, ticket_id=waiting.pk, body=f"消息 {i}", internal=i % 2 == 0)
    assert count() == few
