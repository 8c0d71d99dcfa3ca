"""Pictures in chat on the pages (issue #13 item 3): the console's ticket
page and reply box, the buyer's chat page, the merchant portal's conversation."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tickets import services
from tickets.models import Attachment
from tickets.tests.factories import ticket_in_state
from tickets.tests.test_attachments import PDF, jpeg_with_exif

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture
def ticket(buyer, agent, order):
    return ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)


def _upload(actor, ticket, data):
    return services.upload_attachment(actor=actor, ticket_id=ticket.pk, data=data)


# --- the pages ---------------------------------------------------------------------------


def test_console_page_and_chat_page_show_thumbnails(client, buyer, agent, ticket, django_assert_max_num_queries):
    photo = _upload(buyer, ticket, jpeg_with_exif())
    pdf = _upload(buyer, ticket, PDF)
    services.post_message(actor=buyer, ticket_id=ticket.pk, body="", attachment_ids=[photo.pk, pdf.pk])
    client.force_login(agent)
    html = client.get(reverse("console:ticket", args=[ticket.pk])).content.decode()
    assert f'src="/api/v1/attachments/{photo.pk}/thumbnail/"' in html
    assert f'href="/api/v1/attachments/{photo.pk}/"' in html
    assert f'href="/api/v1/attachments/{pdf.pk}/"' in html
    assert 'id="reply-attach"' in html
    client.force_login(buyer)
    html = client.get(reverse("chat:room", args=[ticket.pk])).content.decode()
    assert f'src="/api/v1/attachments/{photo.pk}/thumbnail/"' in html
    assert 'id="chat-attach"' in html


def test_console_reply_with_attachment(client, agent, ticket):
    attachment = _upload(agent, ticket, jpeg_with_exif())
    client.force_login(agent)
    response = client.post(reverse("console:reply", args=[ticket.pk]),
                           {"body": "", "attachment_ids": [str(attachment.pk)]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200, response.content
    assert f'/api/v1/attachments/{attachment.pk}/thumbnail/' in response.content.decode()
    assert Attachment.objects.get(pk=attachment.pk).message_id is not None
    # a foreign id is refused inline, nothing written
    other = _upload(agent, ticket, PDF)
    Attachment.objects.filter(pk=other.pk).update(uploaded_by=ticket.buyer)
    response = client.post(reverse("console:reply", args=[ticket.pk]),
                           {"body": "x", "attachment_ids": [str(other.pk)]}, HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    assert Attachment.objects.get(pk=other.pk).message_id is None


def test_chat_page_costs_the_same_for_10_and_100_messages_with_pictures(client, buyer, ticket,
                                                                        django_assert_max_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def add(n):
        for i in range(n):
            attachment = _upload(buyer, ticket, PDF)
            services.post_message(actor=buyer, ticket_id=ticket.pk, body=f"#{i}", attachment_ids=[attachment.pk])

    client.force_login(buyer)
    add(10)
    with CaptureQueriesContext(connection) as ten:
        assert client.get(reverse("chat:room", args=[ticket.pk])).status_code == 200
    add(90)
    with django_assert_max_num_queries(len(ten)):
        html = client.get(reverse("chat:room", args=[ticket.pk])).content.decode()
    assert html.count('class="att att-file"') == 100


def test_merchant_portal_shows_attachments_once_invited(client, buyer, agent, merchant_user, ticket):
    photo = _upload(buyer, ticket, jpeg_with_exif())
    services.post_message(actor=buyer, ticket_id=ticket.pk, body="破了", attachment_ids=[photo.pk])
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="wait_merchant")
    client.force_login(merchant_user)
    html = client.get(reverse("portal_tickets:detail", args=[ticket.pk])).content.decode()
    assert f'src="/api/v1/attachments/{photo.pk}/thumbnail/"' in html
