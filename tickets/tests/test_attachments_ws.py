"""Pictures in chat over /ws/tickets/<id>/chat/ through the real ASGI stack
(issue #13 item 3): a message frame with ``attachment_ids`` is stored by the
writer's batch, claims the files, and the frame the others get carries
``attachments``; a foreign id is refused with nothing written; the replay
carries them too."""

import pytest
from channels.db import database_sync_to_async

from tickets import services
from tickets.models import Attachment, Message
from tickets.tests.factories import ticket_in_state
from tickets.tests.test_attachments import PDF, jpeg_with_exif
from tickets.tests.test_chat_consumer import _connect, _last_seq, _next_of

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _media(settings, tmp_path):
    settings.MEDIA_ROOT = str(tmp_path / "media")


async def test_a_frame_with_attachments_reaches_the_other_side(buyer, agent, order):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    photo = await database_sync_to_async(services.upload_attachment)(actor=buyer, ticket_id=ticket.pk,
                                                                     data=jpeg_with_exif())
    foreign = await database_sync_to_async(services.upload_attachment)(actor=agent, ticket_id=ticket.pk, data=PDF)
    seq = await _last_seq(ticket)
    agent_ws = await database_sync_to_async(_connect)(agent, ticket.pk, after_seq=seq)
    buyer_ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await agent_ws.connect(timeout=10))[0] and (await buyer_ws.connect(timeout=10))[0]
    try:
        # a picture without text
        await buyer_ws.send_json_to({"type": "message", "body": "", "client_msg_id": "p1",
                                     "attachment_ids": [photo.pk]})
        ack = await _next_of(buyer_ws, "ack", past=("joined", "here", "left", "message"))
        assert ack["seq"] == seq + 1
        frame = await _next_of(agent_ws, "message")
        assert frame["seq"] == seq + 1 and frame["body"] == ""
        assert frame["attachments"] == [{
            "id": photo.pk, "content_type": "image/jpeg", "size_bytes": photo.size_bytes,
            "url": f"/api/v1/attachments/{photo.pk}/", "thumbnail_url": f"/api/v1/attachments/{photo.pk}/thumbnail/",
        }]
        stored = await database_sync_to_async(lambda: Attachment.objects.get(pk=photo.pk).message.seq)()
        assert stored == seq + 1
        # the agent's upload is not the buyer's to send; the same photo again is taken
        for ids in ([foreign.pk], [photo.pk]):
            await buyer_ws.send_json_to({"type": "message", "body": "再看", "attachment_ids": ids})
            error = await _next_of(buyer_ws, "error", past=("joined", "here", "left", "message"))
            assert error["code"] == "attachment_unavailable"
        # malformed ids and too many are refused before the writer
        await buyer_ws.send_json_to({"type": "message", "body": "x", "attachment_ids": ["1"]})
        assert (await _next_of(buyer_ws, "error", past=("joined", "here", "left", "message")))["code"] == "invalid"
        count = await database_sync_to_async(lambda: Message.objects.filter(ticket=ticket).count())()
        assert count == seq + 1
        assert await database_sync_to_async(lambda: Attachment.objects.get(pk=foreign.pk).message_id)() is None
    finally:
        await agent_ws.disconnect()
        await buyer_ws.disconnect()
    # a socket that connects later gets the picture in the replay
    late = await database_sync_to_async(_connect)(agent, ticket.pk, after_seq=seq)
    assert (await late.connect(timeout=10))[0]
    replayed = await _next_of(late, "message")
    assert replayed["attachments"][0]["id"] == photo.pk
    await late.disconnect()


def test_the_replay_reads_what_the_orm_reads(buyer, agent, order):
    """The socket's replay is one SQL statement written by hand: its frames
    equal ``message_payload`` of the messages as the ORM loads them (author
    names, notes for staff only, a system notice without author, attachments
    of the messages that have any), and it starts after the seq asked."""
    from django.db import transaction
    from django.utils import timezone

    from tickets.consumers import _stored_after
    from tickets.events import message_payload
    from tickets.models import Ticket
    from tickets.rules import viewer_of
    from tickets.services.conversation import append_notice

    ticket = ticket_in_state("assigned", buyer=buyer, agent=agent, order=order)
    buyer.display_name = ""
    buyer.first_name, buyer.last_name = "晓雨", "林"
    buyer.save()
    photo = services.upload_attachment(actor=buyer, ticket_id=ticket.pk, data=jpeg_with_exif())
    pdf = services.upload_attachment(actor=buyer, ticket_id=ticket.pk, data=PDF)
    services.post_message(actor=buyer, ticket_id=ticket.pk, body="看图", attachment_ids=[photo.pk, pdf.pk])
    services.post_message(actor=agent, ticket_id=ticket.pk, body="内部：已核实", internal=True)
    with transaction.atomic():
        append_notice(ticket=Ticket.objects.select_for_update().get(pk=ticket.pk), notice="reopened",
                      now=timezone.now())
    services.post_message(actor=agent, ticket_id=ticket.pk, body="已为您处理")

    def by_orm(viewer_sees_notes: bool, after: int) -> list[dict]:
        messages = (Message.objects.filter(ticket=ticket, seq__gt=after).select_related("author")
                    .prefetch_related("attachments").order_by("seq"))
        if not viewer_sees_notes:
            messages = messages.filter(internal=False)
        return [message_payload(m) for m in messages]

    staff, customer = viewer_of(agent), viewer_of(buyer)
    everything = _stored_after(staff, ticket.pk, 0)
    assert everything == by_orm(True, 0)
    assert [f["internal"] for f in everything].count(True) == 1 and any(f["author_id"] is None for f in everything)
    assert [len(f["attachments"]) for f in everything if f["attachments"]] == [2]
    assert any(f["author"]["name"] == "晓雨 林" for f in everything)
    assert _stored_after(customer, ticket.pk, 0) == by_orm(False, 0)
    assert all(not f["internal"] for f in _stored_after(customer, ticket.pk, 0))
    middle = everything[2]["seq"]
    assert _stored_after(staff, ticket.pk, middle) == by_orm(True, middle) == everything[3:]
