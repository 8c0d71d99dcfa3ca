"""/ws/console/ through the real ASGI stack: session, origin and role checked
at connect; published events arrive as frames."""

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from channels.routing import get_default_application
from tickets import services
from tickets.tests.factories import open_ticket

pytestmark = pytest.mark.django_db(transaction=True)


def _session_cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def _communicator(user=None, origin=b"http://127.0.0.1:8000") -> WebsocketCommunicator:
    # a browser's handshake: the page's origin and the Host it connected to
    headers = [(b"origin", origin), (b"host", b"127.0.0.1:8000")]
    if user is not None:
        headers.append((b"cookie", _session_cookie(user)))
    return WebsocketCommunicator(get_default_application(), "/ws/console/", headers=headers)


async def test_staff_connect_and_receive_ticket_changes(agent, buyer, order):
    communicator = await database_sync_to_async(_communicator)(agent)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    ticket = await database_sync_to_async(open_ticket)(buyer=buyer, order=order)
    # the routing; the opening message is nobody's yet, so no console hears of it
    frame = await communicator.receive_json_from(timeout=5)
    assert frame["type"] == "ticket.changed" and frame["ticket_id"] == ticket.pk
    await database_sync_to_async(services.transition_ticket)(actor=agent, ticket_id=ticket.pk, name="assign")
    # the holder's console hears of messages on its tickets (without the body)
    frame = await communicator.receive_json_from(timeout=5)
    assert frame == {"type": "message.posted", "ticket_id": ticket.pk, "seq": 2}  # the "assigned" notice
    frame = await communicator.receive_json_from(timeout=5)
    assert (frame["status"], frame["assignee_id"]) == ("assigned", agent.pk)
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await communicator.disconnect()


async def test_anonymous_is_closed_4401():
    communicator = _communicator(None)
    connected, code = await communicator.connect(timeout=10)
    assert not connected and code == 4401


async def test_buyer_and_merchant_are_closed_4403(buyer, merchant_user):
    for user in (buyer, merchant_user):
        communicator = await database_sync_to_async(_communicator)(user)
        connected, code = await communicator.connect(timeout=10)
        assert not connected and code == 4403


async def test_foreign_origin_is_refused(agent):
    communicator = await database_sync_to_async(_communicator)(agent, origin=b"http://evil.example.com")
    connected, _ = await communicator.connect(timeout=10)
    assert not connected


async def test_bad_frames_get_error_frames_not_a_crash(agent):
    communicator = await database_sync_to_async(_communicator)(agent)
    connected, _ = await communicator.connect(timeout=10)
    assert connected
    await communicator.send_to(text_data="{not json")
    assert (await communicator.receive_json_from(timeout=5))["code"] == "malformed_json"
    await communicator.send_to(text_data="x" * 10000)
    assert (await communicator.receive_json_from(timeout=5))["code"] == "frame_refused"
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert (await communicator.receive_json_from(timeout=5))["code"] == "frame_refused"
    await communicator.send_json_to({"type": "ping"})
    assert await communicator.receive_json_from(timeout=5) == {"type": "pong"}
    await communicator.disconnect()


async def test_messages_are_announced_to_the_holder_s_console_only(agent, other_agent, buyer, order):
    """Every message on the platform to every console would be thousands of
    frames a second at peak: only the agent who holds the ticket hears of it."""
    from tickets.tests.factories import ticket_in_state

    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    holder = await database_sync_to_async(_communicator)(agent)
    bystander = await database_sync_to_async(_communicator)(other_agent)
    assert (await holder.connect(timeout=10))[0] and (await bystander.connect(timeout=10))[0]
    message = await database_sync_to_async(services.post_message)(actor=buyer, ticket_id=ticket.pk, body="在吗")
    frame = await holder.receive_json_from(timeout=5)
    assert frame == {"type": "message.posted", "ticket_id": ticket.pk, "seq": message.seq}
    assert await bystander.receive_nothing(timeout=0.5)
    await holder.disconnect()
    await bystander.disconnect()


async def test_a_report_up_reaches_the_next_tiers_console_only(agent, supervisor, buyer, order):
    """上报 tells the next tier: the team lead's console hears it, another
    agent's console does not (it has no tier 2 group)."""
    from accounts import roles
    from accounts.tests.factories import UserFactory

    other = await database_sync_to_async(UserFactory)(role=roles.AGENT, username="agent_c")
    ticket = await database_sync_to_async(open_ticket)(buyer=buyer, order=order)
    await database_sync_to_async(services.transition_ticket)(actor=agent, ticket_id=ticket.pk, name="assign")
    lead = await database_sync_to_async(_communicator)(supervisor)
    bystander = await database_sync_to_async(_communicator)(other)
    assert (await lead.connect(timeout=10))[0] and (await bystander.connect(timeout=10))[0]

    await database_sync_to_async(services.report_up)(actor=agent, ticket_id=ticket.pk, note="请组长处理")

    lead_frames = [await lead.receive_json_from(timeout=5) for _ in range(2)]
    reported = [f for f in lead_frames if f["type"] == "ticket.reported_up"]
    assert reported and reported[0]["ticket_id"] == ticket.pk and reported[0]["tier"] == 2
    assert reported[0]["note"] == "请组长处理"
    seen = await bystander.receive_json_from(timeout=5)
    assert seen["type"] == "ticket.changed"  # every console hears the change, not the report up
    assert await bystander.receive_nothing(timeout=0.5)
    await lead.disconnect()
    await bystander.disconnect()

