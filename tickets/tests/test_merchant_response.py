"""The merchant accepts or contests a claim, with evidence images kept and
shown only to staff and that merchant."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tickets import services
from tickets.errors import Conflict, InvalidInput, PermissionDenied, TicketNotFound
from tickets.models import Evidence, Message, TicketEvent
from tickets.tests.factories import open_ticket, ticket_in_state

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


@pytest.mark.django_db
def test_contest_with_images_resumes_the_ticket(api, buyer, order, agent, merchant_user, other_merchant_user, other_buyer):
    ticket = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    response = api(merchant_user).post(
        f"/api/v1/tickets/{ticket.pk}/merchant-response/",
        {"action": "contest", "text": "已签收，附签收照片",
         "images": [SimpleUploadedFile("sign.png", PNG, content_type="image/png")]},
        format="multipart",
    )
    assert response.status_code == 201, response.json()
    event = TicketEvent.objects.get(ticket=ticket, kind="merchant_contest")
    evidence = Evidence.objects.get()
    assert event.data["evidence_ids"] == [evidence.pk] and evidence.size == len(PNG)
    ticket.refresh_from_db()
    assert ticket.status == "assigned"
    assert Message.objects.filter(ticket=ticket, author_role="merchant", body="商家提出异议：已签收，附签收照片").exists()
    # the image is served to staff and that merchant only
    assert api(agent).get(f"/api/v1/evidence/{evidence.pk}/").status_code == 200
    own = api(merchant_user).get(f"/api/v1/evidence/{evidence.pk}/")
    assert own.status_code == 200 and b"".join(own.streaming_content) == PNG
    for outsider in (other_merchant_user, buyer, other_buyer):
        assert api(outsider).get(f"/api/v1/evidence/{evidence.pk}/").status_code == 404


@pytest.mark.django_db
def test_accept_refund(buyer, order, agent, merchant_user):
    ticket = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    services.respond_as_merchant(actor=merchant_user, ticket_id=ticket.pk, action="accept_refund")
    assert TicketEvent.objects.filter(ticket=ticket, kind="merchant_accept_refund").exists()
    assert Message.objects.filter(ticket=ticket, author_role="merchant", body="商家同意退款。").exists()


@pytest.mark.django_db
def test_refusals(buyer, order, agent, merchant_user, other_merchant_user):
    ticket = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    with pytest.raises(TicketNotFound):
        services.respond_as_merchant(actor=other_merchant_user, ticket_id=ticket.pk, action="accept_refund")
    with pytest.raises(PermissionDenied):
        services.respond_as_merchant(actor=agent, ticket_id=ticket.pk, action="accept_refund")
    with pytest.raises(InvalidInput):
        services.respond_as_merchant(actor=merchant_user, ticket_id=ticket.pk, action="contest", text="")
    with pytest.raises(InvalidInput):
        services.respond_as_merchant(actor=merchant_user, ticket_id=ticket.pk, action="shrug")
    fake = services.Upload(name="x.png", content_type="image/png", data=b"<script>")
    with pytest.raises(InvalidInput):
        services.respond_as_merchant(actor=merchant_user, ticket_id=ticket.pk, action="contest", text="x", images=[fake])
    big = services.Upload(name="x.png", content_type="image/png", data=PNG + b"\x00" * (5 * 1024 * 1024))
    with pytest.raises(InvalidInput):
        services.respond_as_merchant(actor=merchant_user, ticket_id=ticket.pk, action="contest", text="x", images=[big])
    assert not Evidence.objects.exists()
    buyer_only = open_ticket(buyer=buyer, order=order)
    with pytest.raises(TicketNotFound):
        services.respond_as_merchant(actor=merchant_user, ticket_id=buyer_only.pk, action="accept_refund")
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="resolve")
    with pytest.raises(Conflict):
        services.respond_as_merchant(actor=merchant_user, ticket_id=ticket.pk, action="accept_refund")


@pytest.mark.django_db
def test_bad_multipart_input(api, buyer, order, agent, merchant_user):
    ticket = ticket_in_state("waiting_merchant", buyer=buyer, agent=agent, order=order)
    path = f"/api/v1/tickets/{ticket.pk}/merchant-response/"
    assert api(merchant_user).post(path, {"action": "dance"}, format="multipart").status_code == 400
    too_many = [SimpleUploadedFile(f"{i}.png", PNG, content_type="image/png") for i in range(5)]
    assert api(merchant_user).post(path, {"action": "contest", "text": "x", "images": too_many},
                                   format="multipart").status_code == 400
    assert not Evidence.objects.exists()
