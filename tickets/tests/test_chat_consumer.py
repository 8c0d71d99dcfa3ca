"""/ws/tickets/<id>/chat/ through the ASGI stack: scope at connect, replay
after ``after_seq`` then stream without duplicates, internal notes for staff
only, idempotent send, typing relayed, bad frames and floods refused."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from channels.routing import get_default_application
from tickets import services
from tickets.consumers import ChatConsumer
from tickets.models import Message, ReadMark, Ticket
from tickets.tests.factories import ticket_in_state

pytestmark = pytest.mark.django_db(transaction=True)


def _connect(user, ticket_id, after_seq=0):
    # a browser's handshake: the page's own origin and the Host it connected to
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000")]
    if user is not None:
        client = Client()
        client.force_login(user)
        headers.append((b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()))
    return WebsocketCommunicator(get_default_application(), f"/ws/tickets/{ticket_id}/chat/?after_seq={after_seq}", headers=headers)


async def _last_seq(ticket) -> int:
    """Where a client that has seen everything so far would resume."""
    return await database_sync_to_async(lambda: Ticket.objects.get(pk=ticket.pk).last_seq)()


def _replays_read(monkeypatch) -> list:
    """The arguments of every replay read from now on (each still read)."""
    import tickets.consumers

    reads = []
    original = tickets.consumers._stored_after
    monkeypatch.setattr(tickets.consumers, "_stored_after", lambda *args: reads.append(args) or original(*args))
    return reads


async def _frames(comm, n):
    return [await comm.receive_json_from(timeout=5) for _ in range(n)]


async def _next_of(comm, kind: str, *, past=("joined", "here", "left")) -> dict:
    """The next frame of ``kind``, past presence frames (joined, here) that a
    busy machine may deliver late (and past any other kinds named)."""
    while True:
        frame = await comm.receive_json_from(timeout=5)
        if frame["type"] == kind:
            return frame
        assert frame["type"] in past, frame


async def _drain(comm) -> list[dict]:
    """Every frame that arrives until the socket goes quiet (a receive timeout
    would cancel the application, so ask ``receive_nothing`` first)."""
    frames = []
    while not await comm.receive_nothing(timeout=0.5):
        frames.append(await comm.receive_json_from(timeout=5))
    return frames


async def test_replay_then_stream_without_gaps_or_duplicates(buyer, agent, order):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    # seq 1 the request, 2 the "assigned" notice
    for text in ("一", "二", "三"):
        await database_sync_to_async(services.post_message)(actor=agent, ticket_id=ticket.pk, body=text)
    buyer_ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=3)
    connected, _ = await buyer_ws.connect(timeout=10)
    assert connected
    replay = await _frames(buyer_ws, 2)
    assert [(f["type"], f["seq"], f["body"]) for f in replay] == [("message", 4, "二"), ("message", 5, "三")]
    assert replay[0]["author"]["role"] == "agent" and replay[0]["created_at"]
    # a note stays with staff; a new message streams once
    await database_sync_to_async(services.post_message)(actor=agent, ticket_id=ticket.pk, body="内部", internal=True)
    await database_sync_to_async(services.post_message)(actor=agent, ticket_id=ticket.pk, body="四")
    frames = []
    while True:
        frame = await buyer_ws.receive_json_from(timeout=5)
        frames.append(frame)
        if frame.get("type") == "message":
            break
    assert frames[-1]["seq"] == 7 and frames[-1]["body"] == "四"
    assert all(f.get("body") != "内部" for f in frames)
    await buyer_ws.disconnect()


async def test_send_is_idempotent_and_acknowledged(buyer, agent, order):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    seq = await _last_seq(ticket)
    ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await ws.connect(timeout=10))[0]
    for _ in range(2):
        await ws.send_json_to({"type": "message", "body": "在吗", "client_msg_id": "c-1"})
    frames = await _drain(ws)
    acks = [f for f in frames if f["type"] == "ack"]
    assert [a["seq"] for a in acks] == [seq + 1, seq + 1]
    assert [f["seq"] for f in frames if f["type"] == "message"] == [seq + 1]
    assert await database_sync_to_async(Message.objects.filter(ticket=ticket, client_msg_id="c-1").count)() == 1
    await ws.disconnect()


async def test_typing_reaches_the_other_side(buyer, agent, order):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    agent_ws = await database_sync_to_async(_connect)(agent, ticket.pk, after_seq=await _last_seq(ticket))
    buyer_ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=await _last_seq(ticket))
    assert (await agent_ws.connect(timeout=10))[0]
    assert await agent_ws.receive_nothing(timeout=0.3)  # the agent's own "joined" has gone by
    assert (await buyer_ws.connect(timeout=10))[0]
    joined = await agent_ws.receive_json_from(timeout=5)  # the buyer came in after the agent
    assert joined["type"] == "joined" and joined["author"]["role"] == "buyer"
    here = await buyer_ws.receive_json_from(timeout=5)  # and learns the agent was already there
    assert here["type"] == "here" and here["author"]["id"] == agent.pk and here["author"]["role"] == "agent"
    await agent_ws.send_json_to({"type": "typing"})
    frame = await buyer_ws.receive_json_from(timeout=5)
    assert frame["type"] == "typing" and frame["author"]["id"] == agent.pk
    assert await agent_ws.receive_nothing(timeout=0.3)
    await agent_ws.disconnect()
    await buyer_ws.disconnect()


async def test_scope_at_connect(buyer, other_buyer, agent, order, merchant_user):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    anonymous = await database_sync_to_async(_connect)(None, ticket.pk)
    assert (await anonymous.connect(timeout=10)) == (False, 4401)
    for outsider in (other_buyer, merchant_user):  # the merchant is not invited to this buyer-only ticket
        ws = await database_sync_to_async(_connect)(outsider, ticket.pk)
        assert (await ws.connect(timeout=10)) == (False, 4403)
    unknown = await database_sync_to_async(_connect)(agent, 987654)
    assert (await unknown.connect(timeout=10)) == (False, 4403)


async def test_bad_frames_and_floods_get_error_frames(buyer, agent, order):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=await _last_seq(ticket))
    assert (await ws.connect(timeout=10))[0]
    await ws.send_to(text_data="{oops")
    assert (await ws.receive_json_from(timeout=5))["code"] == "malformed_json"
    await ws.send_to(text_data="x" * 9000)
    assert (await ws.receive_json_from(timeout=5))["code"] == "frame_refused"
    await ws.send_json_to({"type": "message", "body": ""})
    assert (await ws.receive_json_from(timeout=5))["code"] == "invalid"
    burst = ChatConsumer.BURST
    for i in range(burst + 2):
        await ws.send_json_to({"type": "message", "body": f"刷屏{i}", "client_msg_id": f"f{i}"})
    codes = [frame.get("code") or frame["type"] for frame in await _drain(ws)]
    assert "throttled" in codes
    stored = await database_sync_to_async(Message.objects.filter(ticket=ticket, body__startswith="刷屏").count)()
    assert stored == burst - 1  # the empty body counted towards the burst
    await ws.disconnect()


async def test_buyer_sees_the_merchant_join_once_brought_in(buyer, agent, order, merchant_user):
    ticket = await database_sync_to_async(ticket_in_state)("waiting_merchant", buyer=buyer, agent=agent, order=order)
    buyer_ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=await _last_seq(ticket))
    assert (await buyer_ws.connect(timeout=10))[0]
    assert await buyer_ws.receive_nothing(timeout=0.3)
    merchant_ws = await database_sync_to_async(_connect)(merchant_user, ticket.pk, after_seq=await _last_seq(ticket))
    assert (await merchant_ws.connect(timeout=10))[0]
    frame = await buyer_ws.receive_json_from(timeout=5)
    assert frame["type"] == "joined"
    assert {k: frame["author"][k] for k in ("id", "name", "role")} == {
        "id": merchant_user.pk, "name": merchant_user.name, "role": "merchant_staff"}
    await merchant_ws.send_json_to({"type": "message", "body": "已安排补发", "client_msg_id": "m-1"})
    message = await buyer_ws.receive_json_from(timeout=5)
    assert message["type"] == "message" and message["author"]["role"] == "merchant"
    await buyer_ws.disconnect()
    await merchant_ws.disconnect()


async def test_read_receipts_are_stored_and_shown_to_the_others(buyer, agent, order):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    await database_sync_to_async(services.post_message)(actor=agent, ticket_id=ticket.pk, body="您好")
    seq = await _last_seq(ticket)
    agent_ws = await database_sync_to_async(_connect)(agent, ticket.pk, after_seq=seq)
    buyer_ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await agent_ws.connect(timeout=10))[0] and (await buyer_ws.connect(timeout=10))[0]
    await _drain(agent_ws)
    await _drain(buyer_ws)
    await buyer_ws.send_json_to({"type": "read", "seq": seq})
    frame = await _next_of(agent_ws, "read")
    assert frame["seq"] == seq and frame["author"]["role"] == "buyer"
    assert await buyer_ws.receive_nothing(timeout=0.3)  # one's own receipt is no news
    mark = await database_sync_to_async(ReadMark.objects.get)(ticket=ticket, user=buyer)
    assert mark.seq == seq
    # a bad seq is an error frame; reading nothing new sends nothing
    await buyer_ws.send_json_to({"type": "read", "seq": "x"})
    assert (await buyer_ws.receive_json_from(timeout=5))["code"] == "invalid"
    await buyer_ws.send_json_to({"type": "read", "seq": seq})
    assert await agent_ws.receive_nothing(timeout=0.3)
    await agent_ws.disconnect()
    await buyer_ws.disconnect()


async def test_viewers_see_each_other_come_and_go(buyer, agent, other_agent, order):
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    seq = await _last_seq(ticket)
    first = await database_sync_to_async(_connect)(agent, ticket.pk, after_seq=seq)
    assert (await first.connect(timeout=10))[0]
    assert await first.receive_nothing(timeout=0.3)  # its own "joined" has gone by
    second = await database_sync_to_async(_connect)(other_agent, ticket.pk, after_seq=seq)
    assert (await second.connect(timeout=10))[0]
    joined = await first.receive_json_from(timeout=5)
    assert joined["type"] == "joined" and joined["author"]["id"] == other_agent.pk
    here = await second.receive_json_from(timeout=5)
    assert here["type"] == "here" and here["author"]["id"] == agent.pk
    await second.disconnect()
    left = await first.receive_json_from(timeout=5)
    assert left["type"] == "left" and left["author"]["key"] == joined["author"]["key"]
    await first.disconnect()


async def test_a_dropped_wake_up_is_recovered_by_sync_and_by_the_next_own_message(buyer, agent, order, monkeypatch):
    """The channel layer may drop a wake-up (channels-redis past its capacity):
    the stored message still reaches the client, in order, without duplicates."""
    import core.realtime

    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    seq = await _last_seq(ticket)
    ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await ws.connect(timeout=10))[0]
    assert await _drain(ws) == []  # the connect's replay is done before anything is posted
    with monkeypatch.context() as patch:
        patch.setattr(core.realtime, "send_event_now", lambda group, event: None)  # every wake-up lost
        await database_sync_to_async(services.post_message)(actor=agent, ticket_id=ticket.pk, body="丢失的唤醒")
    assert await ws.receive_nothing(timeout=0.5)
    await ws.send_json_to({"type": "sync"})
    frames = await _drain(ws)
    assert [(f["type"], f.get("seq")) for f in frames] == [("message", seq + 1), ("synced", seq + 1)]
    # a second loss, then the buyer writes: its own frame shows a gap, filled at once
    with monkeypatch.context() as patch:
        patch.setattr(core.realtime, "send_event_now", lambda group, event: None)
        await database_sync_to_async(services.post_message)(actor=agent, ticket_id=ticket.pk, body="又丢一次")
    await ws.send_json_to({"type": "message", "body": "在吗", "client_msg_id": "gap-1"})
    frames = await _drain(ws)
    seqs = [f["seq"] for f in frames if f["type"] == "message"]
    assert seqs == [seq + 2, seq + 3]  # each once, in order
    await ws.disconnect()


async def test_the_syncs_of_many_sockets_are_one_read_each_answered_for_its_own_viewer(
        buyer, other_buyer, agent, order, merchant_user, monkeypatch):
    """Every page syncs every 20 s: the process reads the tickets of the syncs
    that arrive together in one statement, and each socket still gets its
    own answer: what it missed (a dropped wake-up), notes for staff only, and
    a 4403 for a merchant whose ticket no longer involves them."""
    import core.realtime
    import tickets.consumers

    shared = await database_sync_to_async(ticket_in_state)("waiting_merchant", buyer=buyer, agent=agent, order=order)
    other = await database_sync_to_async(ticket_in_state)("assigned", buyer=other_buyer, agent=agent)
    seq, other_seq = await _last_seq(shared), await _last_seq(other)
    sockets = {}
    for name, user, ticket, after in (("buyer", buyer, shared, seq), ("agent", agent, shared, seq),
                                      ("merchant", merchant_user, shared, seq), ("other", other_buyer, other, other_seq)):
        sockets[name] = await database_sync_to_async(_connect)(user, ticket.pk, after_seq=after)
        assert (await sockets[name].connect(timeout=10))[0]
    for ws in sockets.values():
        await _drain(ws)
    with monkeypatch.context() as patch:
        patch.setattr(core.realtime, "send_event_now", lambda group, event: None)  # every wake-up lost
        await database_sync_to_async(services.post_message)(actor=agent, ticket_id=shared.pk, body="内部备注",
                                                            internal=True)
        await database_sync_to_async(services.post_message)(actor=agent, ticket_id=shared.pk, body="已为您补发")
    # the merchant's part in the ticket ends without a wake-up either
    await database_sync_to_async(Ticket.objects.filter(pk=shared.pk).update)(party="buyer")
    reads = []
    scopes = tickets.consumers._scopes
    monkeypatch.setattr(tickets.consumers, "_scopes", lambda ids: reads.append(sorted(ids)) or scopes(ids))
    await asyncio.gather(*(ws.send_json_to({"type": "sync"}) for ws in sockets.values()))
    assert (await sockets["merchant"].receive_output(timeout=5)) == {"type": "websocket.close", "code": 4403}
    got = {name: [(f["type"], f.get("seq")) for f in await _drain(sockets[name])] for name in ("buyer", "agent", "other")}
    assert got == {
        "buyer": [("message", seq + 2), ("synced", seq + 2)],
        "agent": [("message", seq + 1), ("message", seq + 2), ("synced", seq + 2)],
        "other": [("synced", other_seq)],
    }
    assert reads == [sorted([shared.pk, other.pk])]  # four syncs, one statement
    for name in ("buyer", "agent", "other"):
        await sockets[name].disconnect()


async def test_internal_notes_never_reach_the_buyer_nor_cost_it_a_read(buyer, agent, order, monkeypatch):
    """Notes go to the staff-only group; the public frame after a note names
    the public message before it, so the buyer's socket sees no gap and reads
    nothing from the database."""
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    seq = await _last_seq(ticket)
    reads = _replays_read(monkeypatch)
    buyer_ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    agent_ws = await database_sync_to_async(_connect)(agent, ticket.pk, after_seq=seq)
    assert (await buyer_ws.connect(timeout=10))[0] and (await agent_ws.connect(timeout=10))[0]
    await _drain(buyer_ws)
    await _drain(agent_ws)
    connects = len(reads)
    await database_sync_to_async(services.post_message)(actor=agent, ticket_id=ticket.pk, body="内部：买家多次索赔",
                                                        internal=True)
    await database_sync_to_async(services.post_message)(actor=agent, ticket_id=ticket.pk, body="您好，已为您处理")
    buyer_frames = [f for f in await _drain(buyer_ws) if f["type"] == "message"]
    agent_frames = [f for f in await _drain(agent_ws) if f["type"] == "message"]
    assert [(f["seq"], f["body"]) for f in buyer_frames] == [(seq + 2, "您好，已为您处理")]
    assert [(f["seq"], f["internal"]) for f in agent_frames] == [(seq + 1, True), (seq + 2, False)]
    assert len(reads) == connects  # neither socket went back to the database
    await buyer_ws.disconnect()
    await agent_ws.disconnect()


async def test_messages_from_many_sockets_are_stored_in_order_once(buyer, agent, order):
    """Posts from several sockets at once go through the process's writer in
    batches: every one is acknowledged with its own seq, gap-free, once."""
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    seq = await _last_seq(ticket)
    sockets = [await database_sync_to_async(_connect)(user, ticket.pk, after_seq=seq) for user in (buyer, agent) * 2]
    for ws in sockets:
        assert (await ws.connect(timeout=10))[0]
    for i in range(5):
        for n, ws in enumerate(sockets):
            await ws.send_json_to({"type": "message", "body": f"m{n}-{i}", "client_msg_id": f"c{n}-{i}"})
    acks = []
    for ws in sockets:
        acks += [f["seq"] for f in await _drain(ws) if f["type"] == "ack"]
    assert sorted(acks) == list(range(seq + 1, seq + 21))
    stored = await database_sync_to_async(lambda: list(
        Message.objects.filter(ticket=ticket, seq__gt=seq).order_by("seq").values_list("seq", flat=True)))()
    assert stored == list(range(seq + 1, seq + 21))
    assert (await _last_seq(ticket)) == seq + 20
    stored_ticket = await database_sync_to_async(Ticket.objects.get)(pk=ticket.pk)
    assert stored_ticket.last_public_seq == seq + 20 and stored_ticket.last_message_at is not None
    assert stored_ticket.first_response_at is not None  # the agent answered in a batch
    for ws in sockets:
        await ws.disconnect()


async def test_a_database_outage_asks_the_page_to_reconnect_at_once(buyer, agent, order, monkeypatch):
    """PostgreSQL away while a socket opens or replays: closed with 1013, which
    the pages treat as "reconnect now" (and they resume from their last seq)."""
    from django.db import OperationalError

    import tickets.consumers

    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    seq = await _last_seq(ticket)

    def down(*args):
        raise OperationalError("the database system is starting up")

    monkeypatch.setattr(tickets.consumers, "_open", down)
    ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await ws.connect(timeout=10))[0]  # accepted, so that the close code reaches the page
    assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 1013}
    monkeypatch.undo()
    # connected, then the database fails on a sync
    ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await ws.connect(timeout=10))[0]
    await _drain(ws)
    monkeypatch.setattr(tickets.consumers, "_scopes", down)
    await ws.send_json_to({"type": "sync"})
    assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 1013}
    monkeypatch.undo()
    # the replay fails while the socket opens (a buyer's is read in the trip that
    # checks the scope, an agent's after the staff group is joined): 1013
    monkeypatch.setattr(tickets.consumers, "_stored_after", down)
    for who in (buyer, agent):
        ws = await database_sync_to_async(_connect)(who, ticket.pk, after_seq=seq - 1)
        assert (await ws.connect(timeout=10))[0]
        assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 1013}
    monkeypatch.undo()
    # accepted, then the database fails on a sync's replay: closed, not accepted
    # twice (uvicorn raises on a second accept, and the page never heard the 1013)
    ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await ws.connect(timeout=10))[0]
    await _drain(ws)
    scopes = tickets.consumers._scopes
    monkeypatch.setattr(tickets.consumers, "_scopes", lambda ids: {  # something new
        key: (*scope[:3], seq + 1, seq + 1, scope[5]) for key, scope in scopes(ids).items()})
    monkeypatch.setattr(tickets.consumers, "_stored_after", down)
    await ws.send_json_to({"type": "sync"})
    assert (await ws.receive_output(timeout=5)) == {"type": "websocket.close", "code": 1013}


@pytest.mark.postgres
async def test_a_message_sent_after_the_database_dropped_the_writer_s_connection_is_stored(buyer, agent, order):
    """The rehearsal's PostgreSQL fault: every backend terminated. The writer's
    kept connection is dead; the next message is stored on a fresh one and
    acknowledged, with no ``unavailable`` for the page to retry."""
    from django.db import connection

    from tickets.chat_writer import writer

    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    seq = await _last_seq(ticket)
    ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await ws.connect(timeout=10))[0]
    await ws.send_json_to({"type": "message", "body": "第一条", "client_msg_id": "before"})
    assert (await _next_of(ws, "ack", past=("joined", "here", "left", "message")))["seq"] == seq + 1

    the_writer = writer()
    pid = await asyncio.get_running_loop().run_in_executor(
        the_writer._executor, lambda: connection.connection.info.backend_pid)  # the connection it keeps

    def terminate(pid: int) -> bool:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
            return cursor.fetchone()[0]

    assert await database_sync_to_async(terminate)(pid)
    await ws.send_json_to({"type": "message", "body": "第二条", "client_msg_id": "after"})
    frames = await _drain(ws)
    assert [f["code"] for f in frames if f["type"] == "error"] == []
    assert [(f["client_msg_id"], f["seq"]) for f in frames if f["type"] == "ack"] == [("after", seq + 2)]
    bodies = await database_sync_to_async(lambda: list(
        Message.objects.filter(ticket=ticket, seq__gt=seq).order_by("seq").values_list("body", flat=True)))()
    assert bodies == ["第一条", "第二条"]
    await ws.disconnect()


async def test_a_reply_that_moves_the_ticket_and_a_closed_ticket_take_the_full_service(buyer, agent, order):
    """The writer's batch appends plain messages; a buyer's answer to a ticket
    waiting on them resumes it (and its SLA), and a closed ticket refuses."""
    waiting = await database_sync_to_async(ticket_in_state)("waiting_buyer", buyer=buyer, agent=agent, order=order)
    ws = await database_sync_to_async(_connect)(buyer, waiting.pk, after_seq=await _last_seq(waiting))
    assert (await ws.connect(timeout=10))[0]
    await ws.send_json_to({"type": "message", "body": "单号是 SF123", "client_msg_id": "w-1"})
    ack = await _next_of(ws, "ack", past=("joined", "here", "message"))
    resumed = await database_sync_to_async(Ticket.objects.get)(pk=waiting.pk)
    assert resumed.status == "assigned" and resumed.due_at is not None and ack["seq"] <= resumed.last_seq
    await ws.disconnect()
    closed = await database_sync_to_async(ticket_in_state)("closed", buyer=buyer, agent=agent, order=order)
    ws = await database_sync_to_async(_connect)(buyer, closed.pk, after_seq=await _last_seq(closed))
    assert (await ws.connect(timeout=10))[0]
    await ws.send_json_to({"type": "message", "body": "还在吗", "client_msg_id": "c-9"})
    error = await _next_of(ws, "error", past=("joined", "here", "message"))
    assert error["code"] == "ticket_closed"
    assert not await database_sync_to_async(Message.objects.filter(ticket=closed, body="还在吗").exists)()
    await ws.disconnect()


async def test_a_message_stored_while_the_socket_opens_is_delivered_at_once(buyer, agent, order, monkeypatch):
    """A message committed while the socket opens, after its replay was read,
    comes through the ticket's group, which the socket joined before it read
    anything: delivered at once and once (not left to the next sync, 20 s
    later: bench/chat.py's reconnect found that tail when the join came after
    the read)."""
    import tickets.consumers

    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    seq = await _last_seq(ticket)
    original = tickets.consumers._open

    def open_then_agent_replies(scope, ticket_id, after_seq):
        opened = original(scope, ticket_id, after_seq)
        services.post_message(actor=agent, ticket_id=ticket_id, body="刚刚回复")  # published before the join
        return opened

    monkeypatch.setattr(tickets.consumers, "_open", open_then_agent_replies)
    buyer_ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await buyer_ws.connect(timeout=10))[0]
    frame = await _next_of(buyer_ws, "message")
    assert (frame["seq"], frame["body"]) == (seq + 1, "刚刚回复")
    assert [f for f in await _drain(buyer_ws) if f["type"] == "message"] == []  # once
    await buyer_ws.disconnect()


async def test_a_socket_gone_mid_post_does_not_stop_the_writer_for_the_others(buyer, agent, order):
    """A post whose socket closed while the writer worked on it (its task
    cancelled, and the future with it) is dropped quietly: the others in the
    same batch are still answered."""
    from tickets.chat_writer import ChatWriter
    from tickets.errors import TicketClosed
    from tickets.rules import viewer_of

    first = await database_sync_to_async(ticket_in_state)("closed", buyer=buyer, agent=agent, order=order)
    second = await database_sync_to_async(ticket_in_state)("closed", buyer=buyer, agent=agent, order=order)
    viewer = await database_sync_to_async(viewer_of)(buyer)
    writer = ChatWriter()
    gone = asyncio.create_task(writer.post(viewer=viewer, ticket_id=first.pk, body="还在吗", client_msg_id=None))
    stays = asyncio.create_task(writer.post(viewer=viewer, ticket_id=second.pk, body="在吗", client_msg_id=None))
    await asyncio.sleep(0)  # both submitted, in one batch
    gone.cancel()
    with pytest.raises(TicketClosed):
        await asyncio.wait_for(stays, timeout=10)
    assert gone.cancelled()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_closed_writer_gives_its_connection_back_and_its_thread_ends():
    """(PostgreSQL: closing SQLite's in-memory test database is a no-op.)"""
    import threading

    from tests.concurrency import requires_postgres

    requires_postgres()

    from django.db import connections

    from tickets.chat_writer import ChatWriter

    chat_writer = ChatWriter()
    seen = {}

    def use_the_database():
        seen["thread"] = threading.current_thread()
        seen["wrapper"] = connections["default"]  # the writer thread's own
        seen["wrapper"].ensure_connection()

    chat_writer._executor.submit(use_the_database).result()
    assert seen["wrapper"].connection is not None  # kept between batches
    chat_writer.close(wait=True)
    assert seen["wrapper"].connection is None
    assert not seen["thread"].is_alive()


async def test_a_refused_socket_hears_nothing_its_group_brought_while_it_opened(buyer, other_buyer, agent, order,
                                                                                  monkeypatch):
    """The socket joins the ticket's group before the scope is checked; one
    refused (another buyer's) leaves it and never handles what it brought."""
    import tickets.consumers

    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    original = tickets.consumers._open

    def open_while_agent_replies(scope, ticket_id, after_seq):
        services.post_message(actor=agent, ticket_id=ticket_id, body="只给买家看")  # published to the group
        return original(scope, ticket_id, after_seq)

    monkeypatch.setattr(tickets.consumers, "_open", open_while_agent_replies)
    intruder = await database_sync_to_async(_connect)(other_buyer, ticket.pk)
    connected, code = await intruder.connect(timeout=10)
    assert (connected, code) == (False, 4403)
    assert await intruder.receive_nothing(timeout=0.5)
    # and the consumer ends cleanly (a handler that ran for it would have failed on its missing viewer)
    await intruder.send_input({"type": "websocket.disconnect", "code": 4403})
    await intruder.wait(timeout=5)


async def test_a_reconnect_with_nothing_new_reads_no_messages(buyer, agent, order, monkeypatch):
    """Most reconnects missed nothing: the scope query says so, and the
    conversation is not read (a buyer's socket: one trip, one query)."""
    ticket = await database_sync_to_async(ticket_in_state)("assigned", buyer=buyer, agent=agent, order=order)
    seq = await _last_seq(ticket)
    reads = _replays_read(monkeypatch)
    ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq)
    assert (await ws.connect(timeout=10))[0]
    assert [f for f in await _drain(ws) if f["type"] == "message"] == [] and reads == []
    await ws.disconnect()
    # one message behind: read, and sent once
    ws = await database_sync_to_async(_connect)(buyer, ticket.pk, after_seq=seq - 1)
    assert (await ws.connect(timeout=10))[0]
    assert [f["seq"] for f in await _drain(ws) if f["type"] == "message"] == [seq] and len(reads) == 1
    await ws.disconnect()
