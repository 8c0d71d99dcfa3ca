"""/ws/merchant/ through the ASGI stack: merchant staff only, each hears only
its own merchant; a ticket that needs the merchant (or invites it into a chat)
and new messages on the merchant's tickets arrive as frames."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from channels.routing import get_default_application
from merchants.tests.factories import OrderFactory
from tickets import services
from tickets.tests.factories import ticket_in_state

pytestmark = pytest.mark.django_db(transaction=True)


def _connect(user):
    # a browser's handshake: the page's own origin and the Host it connected to
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(get_default_application(), "/ws/merchant/", headers=headers)


async def _drain(comm) -> list[dict]:
    frames = []
    while not await comm.receive_nothing(timeout=0.5):
        frames.append(await comm.receive_json_from(timeout=5))
    return frames


async def test_only_merchant_staff_connect(buyer, agent):
    assert await (await database_sync_to_async(_connect)(None)).connect(timeout=10) == (False, 4401)
    for outsider in (buyer, agent):
        assert await (await database_sync_to_async(_connect)(outsider)).connect(timeout=10) == (False, 4403)


async def test_the_merchant_hears_it_is_needed_and_invited_and_nobody_else_does(
    buyer, agent, merchant, merchant_user, other_merchant_user
):
    order = await database_sync_to_async(OrderFactory)(buyer=buyer, merchant=merchant)
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order, channel="chat")
    ours = await database_sync_to_async(_connect)(merchant_user)
    theirs = await database_sync_to_async(_connect)(other_merchant_user)
    assert (await ours.connect(timeout=10))[0] and (await theirs.connect(timeout=10))[0]
    # a buyer-only ticket is not the merchant's business yet
    await database_sync_to_async(services.post_message)(actor=buyer, ticket_id=ticket.pk, body="在吗")
    assert await ours.receive_nothing(timeout=0.5)
    await database_sync_to_async(services.transition_ticket)(actor=agent, ticket_id=ticket.pk, name="wait_merchant")
    frames = await _drain(ours)
    changed = [f for f in frames if f["type"] == "ticket.changed"]
    assert changed and changed[-1]["ticket_id"] == ticket.pk and changed[-1]["needs_merchant"] is True
    assert changed[-1]["chat"] is True and changed[-1]["status"] == "waiting_merchant"
    # the invitation notice is a message on a ticket the merchant now sees
    assert any(f["type"] == "message.posted" and f["ticket_id"] == ticket.pk for f in frames)
    # the merchant answers: no longer needed
    await database_sync_to_async(services.post_message)(actor=merchant_user, ticket_id=ticket.pk, body="已补发")
    frames = await _drain(ours)
    assert [f["needs_merchant"] for f in frames if f["type"] == "ticket.changed"] == [False]
    # an internal note never reaches the merchant; the other merchant heard nothing at all
    await database_sync_to_async(services.post_message)(actor=agent, ticket_id=ticket.pk, body="内部", internal=True)
    assert await ours.receive_nothing(timeout=0.5)
    assert await theirs.receive_nothing(timeout=0.3)
    await ours.send_json_to({"type": "ping"})
    assert await ours.receive_json_from(timeout=5) == {"type": "pong"}
    await ours.send_to(text_data="{bad")
    assert (await ours.receive_json_from(timeout=5))["code"] == "malformed_json"
    await ours.send_to(text_data="x" * 2000)
    assert (await ours.receive_json_from(timeout=5))["code"] == "frame_refused"
    await ours.send_json_to({"type": "message", "body": "hi"})
    assert (await ours.receive_json_from(timeout=5))["code"] == "unsupported"
    await ours.disconnect()
    await theirs.disconnect()
