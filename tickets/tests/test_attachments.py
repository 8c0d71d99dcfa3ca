"""Pictures in chat (issue #13 item 3): upload (type by content, size cap,
EXIF gone, thumbnails, bombs refused), who may fetch, messages that claim
them (REST, console) and the lists that carry them."""

from __future__ import annotations

import io

import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from PIL import Image

from tickets import services
from tickets.errors import (
    AttachmentUnavailable, FileRequired, FileTooLarge, ImageTooLarge, ImageUnreadable, TooManyAttachments,
    UnsupportedFileType,
)
from tickets.models import Attachment, Message, Ticket
from tickets.services.attachments import sniff_content_type
from tickets.tests.factories import ticket_in_state

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


# --- files made by Pillow in the test ------------------------------------------------


def jpeg_with_exif(size=(1200, 800)) -> bytes:
    """A photo as a phone takes it: EXIF with the camera, a time, a GPS
    position and an orientation (6: rotate 90° to show it upright)."""
    image = Image.new("RGB", size, (200, 40, 40))
    image.paste((20, 20, 220), (0, 0, size[0] // 2, size[1] // 4))
    exif = Image.Exif()
    exif[0x010F] = "CanonSecretMake"
    exif[0x0132] = "2026:11:11 11:11:11"
    exif[0x0112] = 6
    exif.get_ifd(0x8825)[2] = (31.0, 14.0, 0.0)  # GPSLatitude
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif.tobytes())
    return out.getvalue()


def png(size=(64, 48), mode="RGBA") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, (10, 200, 10, 128) if mode == "RGBA" else 1).save(out, "PNG")
    return out.getvalue()


def image_bytes(fmt: str, size=(50, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(out, fmt)
    return out.getvalue()


PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


def _upload(actor, ticket, data):
    return services.upload_attachment(actor=actor, ticket_id=ticket.pk, data=data)


@pytest.fixture
def ticket(buyer, agent, order):
    return ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)


# --- the service -----------------------------------------------------------------------


def test_type_is_sniffed_from_content_not_name():
    assert sniff_content_type(image_bytes("JPEG")) == "image/jpeg"
    assert sniff_content_type(png()) == "image/png"
    assert sniff_content_type(image_bytes("WEBP")) == "image/webp"
    assert sniff_content_type(image_bytes("GIF")) == "image/gif"
    assert sniff_content_type(PDF) == "application/pdf"
    assert sniff_content_type(SVG) is None
    assert sniff_content_type(b"<html><script>alert(1)</script>") is None
    assert sniff_content_type(b"MZ\x90\x00 an exe") is None


def test_exif_is_gone_orientation_applied_and_thumbnail_small(buyer, ticket):
    # given a phone photo with EXIF (camera, GPS) turned sideways
    data = jpeg_with_exif()
    assert b"CanonSecretMake" in data
    # when the buyer uploads it
    attachment = _upload(buyer, ticket, data)
    # then the stored file is a re-encoded JPEG, upright, with no EXIF at all
    assert attachment.content_type == "image/jpeg" and attachment.message_id is None
    with default_storage.open(attachment.file.name, "rb") as f:
        stored = f.read()
    assert attachment.size_bytes == len(stored)
    assert b"CanonSecretMake" not in stored and b"Exif" not in stored
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG" and image.size == (800, 1200)  # rotated by the orientation
    assert not image.getexif() and "exif" not in image.info
    # the server named the file, not the client
    assert attachment.file.name.startswith(f"attachments/{ticket.pk}/") and attachment.file.name.endswith(".jpg")
    # and a thumbnail of at most 320 px exists
    with default_storage.open(attachment.thumbnail.name, "rb") as f:
        thumb = Image.open(io.BytesIO(f.read()))
    assert thumb.format == "JPEG" and max(thumb.size) == 320 and thumb.size == (213, 320)


@pytest.mark.parametrize("fmt,content_type", [("PNG", "image/png"), ("WEBP", "image/webp"), ("GIF", "image/gif")])
def test_other_image_types_are_reencoded_without_metadata(buyer, ticket, fmt, content_type):
    exif = Image.Exif()
    exif[0x010F] = "CanonSecretMake"
    out = io.BytesIO()
    kwargs = {"exif": exif.tobytes()} if fmt != "GIF" else {"comment": b"CanonSecretMake"}
    Image.new("RGB", (400, 100), (5, 6, 7)).save(out, fmt, **kwargs)
    attachment = _upload(buyer, ticket, out.getvalue())
    assert attachment.content_type == content_type
    with default_storage.open(attachment.file.name, "rb") as f:
        stored = f.read()
    assert b"CanonSecretMake" not in stored
    assert Image.open(io.BytesIO(stored)).format == fmt
    assert attachment.thumbnail


def test_pdf_is_kept_as_is_without_thumbnail(buyer, ticket):
    attachment = _upload(buyer, ticket, PDF)
    assert attachment.content_type == "application/pdf" and not attachment.thumbnail
    assert attachment.file.name.endswith(".pdf") and attachment.size_bytes == len(PDF)


@pytest.mark.parametrize("data,error", [
    (SVG, UnsupportedFileType),
    (b"<!doctype html><script>alert(1)</script>", UnsupportedFileType),
    (b"just some text", UnsupportedFileType),
    (b"\xff\xd8\xff\xe0 not really a jpeg", ImageUnreadable),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, ImageUnreadable),
    (None, FileRequired),
    (b"", FileRequired),
])
def test_bad_files_are_refused_and_nothing_is_stored(buyer, ticket, data, error):
    with pytest.raises(error):
        _upload(buyer, ticket, data)
    assert not Attachment.objects.exists()


def test_size_cap(buyer, ticket, settings):
    settings.ATTACHMENT_MAX_BYTES = len(PDF) - 1
    with pytest.raises(FileTooLarge):
        _upload(buyer, ticket, PDF)
    settings.ATTACHMENT_MAX_BYTES = len(PDF)
    assert _upload(buyer, ticket, PDF).pk


def test_decompression_bomb_is_refused_before_decoding(buyer, ticket, settings):
    # a 1-bit PNG of 100 million pixels is a few kilobytes on the wire
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, "PNG")
    assert len(out.getvalue()) < 100_000
    with pytest.raises(ImageTooLarge):
        _upload(buyer, ticket, out.getvalue())
    # the cap is a setting
    settings.ATTACHMENT_MAX_PIXELS = 100
    with pytest.raises(ImageTooLarge):
        _upload(buyer, ticket, png((11, 10)))
    assert not Attachment.objects.exists()


def test_a_stranger_cannot_upload_to_a_ticket(other_buyer, ticket):
    from tickets.errors import TicketNotFound

    with pytest.raises(TicketNotFound):
        _upload(other_buyer, ticket, PDF)


# --- the API -------------------------------------------------------------------------


def _api_upload(client, ticket_id, data, name="photo.jpg", content_type="image/jpeg"):
    payload = {} if data is None else {"file": SimpleUploadedFile(name, data, content_type=content_type)}
    return client.post(f"/api/v1/tickets/{ticket_id}/attachments/", payload, format="multipart")


def test_api_upload_answers_the_documented_shape(api, buyer, ticket):
    response = _api_upload(api(buyer), ticket.pk, jpeg_with_exif())
    assert response.status_code == 201, response.content
    body = response.json()
    attachment = Attachment.objects.get()
    assert body == {
        "id": attachment.pk, "content_type": "image/jpeg", "size_bytes": attachment.size_bytes,
        "url": f"/api/v1/attachments/{attachment.pk}/", "thumbnail_url": f"/api/v1/attachments/{attachment.pk}/thumbnail/",
    }


@pytest.mark.parametrize("data,name,status,code", [
    (SVG, "evil.svg", 415, "unsupported_file_type"),
    (b"<html>", "photo.jpg", 415, "unsupported_file_type"),
    (b"\xff\xd8\xff\xe0 broken", "photo.jpg", 422, "image_unreadable"),
    (None, "", 400, "file_required"),
])
def test_api_upload_bad_input(api, buyer, ticket, data, name, status, code):
    response = _api_upload(api(buyer), ticket.pk, data, name=name)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    assert not Attachment.objects.exists()


def test_api_upload_too_big(api, buyer, ticket, settings):
    settings.ATTACHMENT_MAX_BYTES = 100
    response = _api_upload(api(buyer), ticket.pk, PDF + b"x" * 200, name="a.pdf", content_type="application/pdf")
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"
    # a body far beyond the cap is refused before it is parsed
    response = _api_upload(api(buyer), ticket.pk, PDF + b"x" * 100_000, name="a.pdf", content_type="application/pdf")
    assert response.status_code == 413 and response.json()["code"] == "file_too_large"


def test_api_upload_to_someone_elses_or_unknown_ticket_is_404(api, other_buyer, ticket):
    assert _api_upload(api(other_buyer), ticket.pk, PDF).status_code == 404
    assert _api_upload(api(other_buyer), 999_999, PDF).status_code == 404
    assert _api_upload(api(None), ticket.pk, PDF).status_code in (401, 403)


def test_upload_to_a_closed_ticket_is_refused(api, buyer, agent, order):
    closed = ticket_in_state("closed", buyer=buyer, agent=agent, order=order)
    response = _api_upload(api(buyer), closed.pk, PDF)
    assert response.status_code == 422 and response.json()["code"] == "ticket_closed"


def _fetch(client, attachment, thumbnail=False):
    suffix = "thumbnail/" if thumbnail else ""
    return client.get(f"/api/v1/attachments/{attachment.pk}/{suffix}")


def test_file_is_served_with_its_stored_type_and_safe_headers(api, buyer, ticket):
    attachment = _upload(buyer, ticket, jpeg_with_exif())
    response = _fetch(api(buyer), attachment)
    assert response.status_code == 200
    assert response["Content-Type"] == "image/jpeg"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Disposition"].startswith("inline")
    assert "sandbox" in response["Content-Security-Policy"]
    assert b"CanonSecretMake" not in b"".join(response.streaming_content)
    thumb = _fetch(api(buyer), attachment, thumbnail=True)
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/jpeg"
    pdf = _upload(buyer, ticket, PDF)
    response = _fetch(api(buyer), pdf)
    assert response["Content-Type"] == "application/pdf" and response["Content-Disposition"].startswith("attachment")
    assert _fetch(api(buyer), pdf, thumbnail=True).status_code == 404


def test_unclaimed_attachment_only_for_its_uploader_and_staff(api, buyer, agent, other_agent, ticket):
    mine = _upload(buyer, ticket, PDF)
    agents = _upload(agent, ticket, PDF)
    assert _fetch(api(buyer), mine).status_code == 200
    assert _fetch(api(other_agent), mine).status_code == 200  # staff
    # the buyer does not see what the agent has not sent yet
    assert _fetch(api(buyer), agents).status_code == 404


def test_scoping_buyers_and_merchants(api, buyer, other_buyer, agent, merchant_user, other_merchant_user, ticket):
    attachment = _upload(agent, ticket, jpeg_with_exif())
    services.post_message(actor=agent, ticket_id=ticket.pk, body="看这张图", attachment_ids=[attachment.pk])
    assert _fetch(api(buyer), attachment).status_code == 200
    # another buyer, anonymous, and a merchant not invited: nothing (404 reveals nothing)
    assert _fetch(api(other_buyer), attachment).status_code == 404
    assert _fetch(api(other_buyer), attachment, thumbnail=True).status_code == 404
    assert _fetch(api(None), attachment).status_code in (401, 403)
    assert _fetch(api(merchant_user), attachment).status_code == 404
    # the ticket's merchant, once invited (waiting on the merchant makes it a party)
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="wait_merchant")
    assert _fetch(api(merchant_user), attachment).status_code == 200
    assert _fetch(api(other_merchant_user), attachment).status_code == 404


def test_internal_note_attachments_are_staff_only(api, buyer, agent, other_agent, merchant_user, ticket):
    attachment = _upload(agent, ticket, PDF)
    services.post_message(actor=agent, ticket_id=ticket.pk, body="内部", internal=True, attachment_ids=[attachment.pk])
    services.transition_ticket(actor=agent, ticket_id=ticket.pk, name="wait_merchant")
    assert _fetch(api(other_agent), attachment).status_code == 200
    assert _fetch(api(buyer), attachment).status_code == 404
    assert _fetch(api(merchant_user), attachment).status_code == 404


def test_media_is_not_served_publicly(client, buyer, ticket):
    attachment = _upload(buyer, ticket, PDF)
    assert client.get(f"/media/{attachment.file.name}").status_code == 404


# --- messages claim attachments -------------------------------------------------------


def test_message_with_attachments_and_no_text(api, buyer, ticket):
    photo = _upload(buyer, ticket, jpeg_with_exif())
    pdf = _upload(buyer, ticket, PDF)
    response = api(buyer).post(f"/api/v1/tickets/{ticket.pk}/messages/",
                               {"body": "", "attachment_ids": [photo.pk, pdf.pk]}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["body"] == ""
    assert [a["id"] for a in body["attachments"]] == [photo.pk, pdf.pk]
    assert body["attachments"][0]["thumbnail_url"] == f"/api/v1/attachments/{photo.pk}/thumbnail/"
    assert body["attachments"][1]["thumbnail_url"] is None
    message = Message.objects.get(pk=body["id"])
    assert set(message.attachments.values_list("pk", flat=True)) == {photo.pk, pdf.pk}
    # the list carries them too
    listed = api(buyer).get(f"/api/v1/tickets/{ticket.pk}/messages/").json()["results"]
    assert listed[-1]["attachments"] == body["attachments"]
    # an empty message without attachments is still refused
    response = api(buyer).post(f"/api/v1/tickets/{ticket.pk}/messages/", {"body": ""}, format="json")
    assert response.status_code == 400


@pytest.mark.parametrize("case", ["foreign", "claimed", "other_ticket", "unknown", "mixed"])
def test_message_cannot_claim_what_is_not_its_authors(api, buyer, agent, order, ticket, case):
    mine = _upload(buyer, ticket, PDF)
    if case == "foreign":
        ids = [_upload(agent, ticket, PDF).pk]
    elif case == "claimed":
        services.post_message(actor=buyer, ticket_id=ticket.pk, body="第一次", attachment_ids=[mine.pk])
        ids = [mine.pk]
    elif case == "other_ticket":
        second = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
        ids = [_upload(buyer, second, PDF).pk]
    elif case == "unknown":
        ids = [mine.pk + 1000]
    else:  # one good, one foreign: all or nothing
        ids = [mine.pk, _upload(agent, ticket, PDF).pk]
    before = Message.objects.filter(ticket=ticket).count()
    last_seq = Ticket.objects.get(pk=ticket.pk).last_seq
    response = api(buyer).post(f"/api/v1/tickets/{ticket.pk}/messages/",
                               {"body": "看图", "attachment_ids": ids}, format="json")
    assert response.status_code == 422 and response.json()["code"] == "attachment_unavailable"
    # nothing half-written: no message, no seq, no claim
    assert Message.objects.filter(ticket=ticket).count() == before
    assert Ticket.objects.get(pk=ticket.pk).last_seq == last_seq
    if case != "claimed":
        assert Attachment.objects.get(pk=mine.pk).message_id is None


def test_attachments_per_message_are_limited(buyer, ticket, settings):
    settings.ATTACHMENTS_PER_MESSAGE = 2
    ids = [_upload(buyer, ticket, PDF).pk for _ in range(3)]
    with pytest.raises(TooManyAttachments):
        services.post_message(actor=buyer, ticket_id=ticket.pk, body="三张", attachment_ids=ids)
    assert not Attachment.objects.filter(message__isnull=False).exists()


def test_api_rejects_malformed_attachment_ids(api, buyer, ticket):
    for ids in (["x"], [0], "1", [True]):
        response = api(buyer).post(f"/api/v1/tickets/{ticket.pk}/messages/",
                                   {"body": "hi", "attachment_ids": ids}, format="json")
        assert response.status_code == 400, (ids, response.content)


def test_claim_is_one_update_and_the_frame_carries_attachments(buyer, agent, ticket, django_capture_on_commit_callbacks,
                                                                 monkeypatch):
    sent = []
    monkeypatch.setattr("tickets.events.send_event_on_commit", lambda groups, event: sent.append((groups, event)))
    photo = _upload(buyer, ticket, jpeg_with_exif())
    services.post_message(actor=buyer, ticket_id=ticket.pk, body="破损照片", attachment_ids=[photo.pk])
    import json

    frame = json.loads(sent[0][1]["text"])
    assert frame["attachments"] == [{
        "id": photo.pk, "content_type": "image/jpeg", "size_bytes": photo.size_bytes,
        "url": f"/api/v1/attachments/{photo.pk}/", "thumbnail_url": f"/api/v1/attachments/{photo.pk}/thumbnail/",
    }]


def test_message_list_costs_the_same_for_10_and_100_messages(api, buyer, ticket, django_assert_max_num_queries):
    client = api(buyer)

    def add(n):
        for i in range(n):
            attachment = _upload(buyer, ticket, PDF)
            services.post_message(actor=buyer, ticket_id=ticket.pk, body=f"#{i}", attachment_ids=[attachment.pk])

    add(10)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ten:
        assert client.get(f"/api/v1/tickets/{ticket.pk}/messages/?page_size=200").status_code == 200
    add(90)
    with django_assert_max_num_queries(len(ten)):
        response = client.get(f"/api/v1/tickets/{ticket.pk}/messages/?page_size=200")
    assert sum(len(m["attachments"]) for m in response.json()["results"]) == 100
