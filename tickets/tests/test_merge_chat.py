"""Issue #13 item 2: the buyer's chat follows a merged ticket to its target
(a ``ticket.merged`` frame live and on connect; the chat page redirects)."""

import pytest
from channels.db import database_sync_to_async

from tickets import services
from tickets.tests.factories import open_ticket
from tickets.tests.test_chat_consumer import _connect, _drain, _next_of


@pytest.mark.django_db(transaction=True)
async def test_the_buyers_socket_is_told_the_target(buyer, agent, order):
    target = await database_sync_to_async(open_ticket)(buyer=buyer, order=order)
    source = await database_sync_to_async(open_ticket)(buyer=buyer, order=order)
    live = await database_sync_to_async(_connect)(buyer, source.pk, after_seq=1)
    assert (await live.connect(timeout=10))[0]
    await _drain(live)  # the replay's reads are done (SQLite's shared-cache test database refuses a read beside a write)

    await database_sync_to_async(services.merge_tickets)(actor=agent, ticket_id=source.pk, into_ticket_id=target.pk)

    frame = await _next_of(live, "ticket.merged", past=("joined", "here", "left", "message", "ticket.changed"))
    assert frame == {"type": "ticket.merged", "ticket_id": source.pk, "into_ticket_id": target.pk}
    await live.disconnect()
    # a socket opened later on the merged ticket replays it, then is told where it went
    late = await database_sync_to_async(_connect)(buyer, source.pk, after_seq=0)
    assert (await late.connect(timeout=10))[0]
    frames = await _drain(late)
    kinds = [f["type"] for f in frames if f["type"] not in ("joined", "here")]
    assert kinds[-1] == "ticket.merged" and frames[-1]["into_ticket_id"] == target.pk
    assert [f["notice"] for f in frames if f["type"] == "message"][-1] == "merged_away"
    await late.disconnect()


@pytest.mark.django_db
def test_the_chat_page_of_a_merged_ticket_redirects(client, buyer, agent, order):
    target, source = open_ticket(buyer=buyer, order=order), open_ticket(buyer=buyer, order=order)
    services.merge_tickets(actor=agent, ticket_id=source.pk, into_ticket_id=target.pk)
    client.force_login(buyer)
    response = client.get(f"/chat/{source.pk}/")
    assert response.status_code == 302 and response.url == f"/chat/{target.pk}/"
    assert client.get(f"/chat/{target.pk}/").status_code == 200
