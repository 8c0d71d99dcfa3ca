"""The market board's ``board`` frame through the real ASGI stack (session,
origin, the console consumer's groups): supervisors' consoles receive it,
agents' never do."""

import pytest
from channels.db import database_sync_to_async

from incidents.events import push_board
from incidents.tasks import push_board as task
from tickets.tests.factories import open_ticket
from tickets.tests.test_consumers import _communicator

pytestmark = pytest.mark.django_db(transaction=True)


async def test_board_frame_reaches_supervisors_only(supervisor, agent, buyer):
    """The market board's figures (issue #14 item 5) go to the ``board`` group,
    which only supervisors' consoles join: the periodic job's push arrives on a
    team lead's socket as a ``board`` frame and never on an agent's."""
    lead = await database_sync_to_async(_communicator)(supervisor)
    worker = await database_sync_to_async(_communicator)(agent)
    assert (await lead.connect(timeout=10))[0] and (await worker.connect(timeout=10))[0]
    await database_sync_to_async(open_ticket)(buyer=buyer, channel="chat")
    for socket in (lead, worker):  # the new ticket's routing, which every console hears
        assert (await socket.receive_json_from(timeout=5))["type"] == "ticket.changed"
    size = await database_sync_to_async(push_board)()
    frame = await lead.receive_json_from(timeout=5)
    assert frame["type"] == "board" and frame["waiting"]["now"] == 1 and size < 8_000
    assert len(frame["inflow"]["today"]) == 60 and len(frame["waiting"]["yesterday"]) == 12
    assert await worker.receive_nothing(timeout=1)
    # the beat table's job publishes the same frame
    await database_sync_to_async(task.apply)()
    assert (await lead.receive_json_from(timeout=5))["type"] == "board"
    assert await worker.receive_nothing(timeout=0.5)
    await lead.disconnect()
    await worker.disconnect()
