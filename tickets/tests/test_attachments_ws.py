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
