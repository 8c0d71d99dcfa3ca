"""Websockets of the console and the chat."""

from __future__ import annotations

import asyncio
import functools
import time

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import prefetch_related_objects

from accounts import roles
from accounts.logins import ip_and_device_of_scope
from core.batched import BatchedRead
from core.consumers import BAD_REQUEST, FORBIDDEN, NOT_AUTHENTICATED, LiveConsumer, in_pool
from core.errors import DomainError, InvalidInput
from core.loops import PerLoop
from core.ws_auth import resolve_user
from core.parsing import MAX_INT, parse_optional_int
from core.rows import Columns, among, column, prepared_cursor
from tickets import chat_writer
from tickets.errors import TicketNotFound
from tickets.events import BOARD, CONSOLE, agent_group, message_payload, staff_group, ticket_group, tier_group
from tickets.models import Attachment, Message, Ticket
from tickets.rules import Viewer, can_view, sees_internal_notes, tiers_heard_by, viewer_of
from tickets.services.attachments import clean_attachment_ids
from tickets.services.chat import clean_body, clean_client_id


class ConsoleConsumer(LiveConsumer):
    """``/ws/console/``: queue and ticket changes, assignment offers, SLA
    alerts and shift reminders, for staff only; the market board's figures
    for supervisors only."""

    async def connect(self) -> None:
        user, is_staff, rank, supervises = await in_pool(_console_user)(self.scope)
        if not user.is_authenticated:
            await self.close(code=NOT_AUTHENTICATED)
            return
        if not is_staff:
            await self.close(code=FORBIDDEN)
            return
        await self.join(CONSOLE)
        await self.join(agent_group(user.pk))
        for tier in tiers_heard_by(rank):  # reports up to the tiers this person owns
            await self.join(tier_group(tier))
        if supervises:  # the market board's figures: supervisors only
            await self.join(BOARD)
        await self.accept()


class ChatConsumer(LiveConsumer):
    """``/ws/tickets/<id>/chat/?after_seq=N``: the ticket's conversation for its
    buyer, staff and (once brought in) its merchant.

    Lossless by construction: join the groups first, then replay every stored
    message with ``seq > after_seq`` from the database, then stream, dropping
    what was already sent; a gap (a lost wake-up) and the layer coming back
    after an outage are filled from the database too. Internal notes come
    through a staff-only group, and each public frame names the public message
    before it, so a buyer's socket never mistakes a note for a lost message.

    Where the database work runs: connects and replays on asgiref's thread
    pool (in parallel), messages and read marks through the process's
    ``ChatWriter`` (batched, on its own thread), the pages' ``sync`` questions
    of every socket of the process in one statement per ``SYNC_WINDOW_S``
    (``core.batched``); typing frames touch no database. The scope is checked
    at connect, inside every write (on the locked ticket), and for typing
    against an answer at most ``SCOPE_TTL_S`` old.
    """

    MAX_FRAME = 8 * 1024
    BURST = 20  # messages per window and connection (a person types far fewer; quick replies come in bursts)
    WINDOW_S = 10.0
    SCOPE_TTL_S = 30.0

    viewer: Viewer | None = None  # set once connect() has let the socket in

    async def connect(self) -> None:
        self.ticket_id = int(self.scope["url_route"]["kwargs"]["ticket_id"])
        try:
            after_seq = self._after_seq()
        except InvalidInput as error:
            await self.accept()
            await self.send_error(error.code, str(error.detail))
            await self.close(code=BAD_REQUEST)
            return
        self.group = ticket_group(self.ticket_id)
        # join first, read after, never the other way round: a message committed
        # between the read and the subscription would wait for the page's next
        # sync. What the group brings meanwhile waits until connect() returns and
        # is dropped by seq if the replay sent it; a socket refused below never
        # handles it (``viewer`` stays unset)
        await self.join(self.group)
        # one trip to the thread pool: the session's user, who they are, the
        # ticket, and for a buyer or merchant what they missed
        opened = await in_pool(_open)(self.scope, self.ticket_id, after_seq)
        if opened is None or opened is FORBIDDEN:
            await self.leave(self.group)
            await self.close(code=NOT_AUTHENTICATED if opened is None else FORBIDDEN)
            return
        viewer, merged_into, frames = opened
        if frames is None:
            # staff: internal notes come through a group of their own, joined
            # before they are read, so a second trip for the replay
            await self.join(staff_group(self.ticket_id))
            frames = await in_pool(_stored_after)(viewer, self.ticket_id, after_seq)
        self.viewer = viewer
        self.client_ip, self.client_device = ip_and_device_of_scope(self.scope)
        self.scope_checked_at = time.monotonic()
        self.last_seq = after_seq
        self.sent_times: list[float] = []
        self.posts: asyncio.Queue = asyncio.Queue()
        self.poster: asyncio.Task | None = None
        await self.accept()
        await self._send_replayed(frames)
        if merged_into is not None:
            # a duplicate merged into another ticket: the client follows to the target
            await self.send_json({"type": "ticket.merged", "ticket_id": self.ticket_id, "into_ticket_id": merged_into})
        # the others see who joined (the buyer sees the merchant come in, agents
        # see who else has the ticket open); each of them answers "here" to us alone
        self.me = {"id": self.viewer.user_id, "name": self.viewer.name, "role": self.viewer.role,
                   "key": _viewer_key(self.channel_name)}
        await self.publish(self.group, {
            "type": "broadcast", "sender": self.channel_name, "payload": {"type": "joined", "author": self.me},
        })

    async def disconnect(self, code: int) -> None:
        if getattr(self, "poster", None) is not None:
            self.poster.cancel()
        if hasattr(self, "me"):
            await self.publish(self.group, {
                "type": "broadcast", "sender": self.channel_name, "payload": {"type": "left", "author": self.me},
            })

    async def recover(self) -> None:
        # wake-ups published while the layer was away are lost; the database is not
        if hasattr(self, "last_seq"):
            await self._replay()

    def _after_seq(self) -> int:
        from urllib.parse import parse_qs

        raw = parse_qs(self.scope.get("query_string", b"").decode()).get("after_seq", [None])[0]
        return parse_optional_int(raw, field="after_seq", minimum=0) or 0

    async def _replay(self) -> None:
        await self._send_replayed(await in_pool(_stored_after)(self.viewer, self.ticket_id, self.last_seq))

    async def _send_replayed(self, frames: list[dict]) -> None:
        for frame in frames:
            self.last_seq = max(self.last_seq, frame["seq"])
            await self.send_json(frame)

    async def _still_in_scope(self) -> bool:
        """For frames that write nothing (typing): the answer of at most SCOPE_TTL_S ago."""
        if time.monotonic() - self.scope_checked_at < self.SCOPE_TTL_S:
            return True
        if await self._stored_up_to() is not None:
            self.scope_checked_at = time.monotonic()
            return True
        await self.close(code=FORBIDDEN)
        return False

    async def _stored_up_to(self) -> int | None:
        """The last seq this socket's viewer may see on its ticket, or None when
        they may no longer see it: read with the other sockets' questions of the
        next ``SYNC_WINDOW_S`` in one statement (``_scopes``)."""
        seen = _seen_in(self.viewer, await _scope_reads()(self.ticket_id))
        return None if seen is None else seen[0]

    async def receive_json(self, content: dict, **kwargs) -> None:
        kind = content.get("type")
        if kind == "message":
            await self._queue_post(content)
        elif kind == "typing":
            if await self._still_in_scope():
                await self.publish(self.group, {
                    "type": "broadcast", "sender": self.channel_name, "payload": {"type": "typing", "author": self.me},
                })
        elif kind == "sync":
            # the client's periodic check: anything stored that a dropped wake-up
            # never announced comes now, in order (the database is the truth). Every
            # page does it every 20 s, so it reads one number first (with the other
            # sockets' of this process, ``_stored_up_to``) and the conversation only
            # when that number is ahead of what the page has
            stored_up_to = await self._stored_up_to()
            if stored_up_to is None:
                await self.close(code=FORBIDDEN)
                return
            self.scope_checked_at = time.monotonic()
            if stored_up_to > self.last_seq:
                await self._replay()
            await self.send_json({"type": "synced", "seq": self.last_seq})
        elif kind == "read":
            # stored in the writer's next batch (read receipts, the console's unread
            # counts), which tells the others once it is
            seq = content.get("seq", self.last_seq)
            if isinstance(seq, bool) or not isinstance(seq, int) or not 0 <= seq <= MAX_INT:
                await self.send_error("invalid", "seq is a non-negative integer.")
                return
            chat_writer.writer().read(viewer=self.viewer, ticket_id=self.ticket_id, seq=seq)
        elif kind == "ping":
            await self.send_json({"type": "pong"})
        else:
            await self.send_error("unsupported", "Frame types: message, typing, read, sync, ping.")

    async def _queue_post(self, content: dict) -> None:
        now = time.monotonic()
        self.sent_times = [t for t in self.sent_times if now - t < self.WINDOW_S]
        if len(self.sent_times) >= self.BURST:
            await self.send_error("throttled", "Too many messages; wait a few seconds.")
            return
        self.sent_times.append(now)
        try:
            attachment_ids = clean_attachment_ids(content.get("attachment_ids"))
            body = clean_body(content.get("body"), with_attachments=bool(attachment_ids))
            client_id = clean_client_id(content.get("client_msg_id"))
        except DomainError as error:
            await self.send_error(error.code, str(error.detail))
            return
        # the socket's own posts go in order, on a task of their own: waiting for
        # the database never holds up what this socket receives meanwhile
        self.posts.put_nowait((body, client_id, attachment_ids))
        if self.poster is None or self.poster.done():
            self.poster = asyncio.create_task(self._post_in_order())

    async def _post_in_order(self) -> None:
        while not self.posts.empty():
            body, client_id, attachment_ids = self.posts.get_nowait()
            try:
                stored = await chat_writer.writer().post(viewer=self.viewer, ticket_id=self.ticket_id, body=body,
                                                        client_msg_id=client_id, ip=self.client_ip,
                                                        device=self.client_device, attachment_ids=attachment_ids)
            except TicketNotFound:
                await self.close(code=FORBIDDEN)
                return
            except DomainError as error:
                await self.send_error(error.code, str(error.detail))
                continue
            await self.send_json({"type": "ack", "client_msg_id": client_id, "seq": stored.seq})

    async def chat_message(self, event) -> None:
        """A stored message's wake-up: its frame, encoded once for every socket."""
        if self.viewer is None:
            return  # refused at connect: what the group brought meanwhile is not for it
        seq = event["seq"]
        if seq <= self.last_seq:
            return  # already sent by the replay
        if self.viewer.is_staff:
            gap = seq > self.last_seq + 1
        else:
            gap = (event.get("prev_public_seq") or 0) > self.last_seq
        if gap:
            # a wake-up overtook another (or one was lost): fill it from the database, in order
            await self._replay()
            return
        self.last_seq = seq
        await self.send(text_data=event["text"])

    async def broadcast(self, event) -> None:
        if self.viewer is None:
            return  # refused at connect (as in chat_message)
        payload = event["payload"]
        kind = payload.get("type")
        if kind in ("typing", "joined", "here", "left"):
            sender = event.get("sender")
            if sender == self.channel_name:
                return
            if kind == "joined" and sender and hasattr(self, "me"):
                await self.send_to(sender, {
                    "type": "broadcast", "sender": self.channel_name, "payload": {"type": "here", "author": self.me},
                })
            await self.send_json(payload)
        elif kind == "read":
            if payload.get("author", {}).get("id") != self.viewer.user_id:  # one's own receipts are no news
                await self.send_json(payload)
        else:
            await self.send_json(payload)


def _console_user(scope):
    user = resolve_user(scope)
    is_staff = roles.is_agent(user)
    return user, is_staff, roles.staff_rank(user) if is_staff else 0, is_staff and roles.is_supervisor(user)


def _open(scope, ticket_id: int, after_seq: int):
    """The session's user as a viewer of the ticket, the ticket it was merged
    into, and for a buyer or merchant the frames stored after ``after_seq``
    (None for staff, whose replay waits for the staff group). None when nobody
    is logged in, FORBIDDEN when they may not see it (the role comes from the
    role cache)."""
    user = resolve_user(scope)
    if not user.is_authenticated:
        return None
    viewer = viewer_of(user)
    seen = _seen(viewer, ticket_id)
    if seen is None:
        return FORBIDDEN
    stored_up_to, merged_into = seen
    if sees_internal_notes(viewer):
        return viewer, merged_into, None
    # nothing new since the page's last frame (most reconnects): no second query
    frames = _stored_after(viewer, ticket_id, after_seq) if stored_up_to > after_seq else []
    return viewer, merged_into, frames


def _seen(viewer: Viewer, ticket_id: int) -> tuple[int, int | None] | None:
    """The last seq the viewer may see on the ticket and the ticket it was
    merged into (if any), or None when they may not see it: a connect's
    question, in its trip to the pool. One query by primary key, its SQL
    written once per process (the ORM took five times longer to build it than
    PostgreSQL took to answer it)."""
    with prepared_cursor() as cursor:
        cursor.execute(_ticket_scope_sql(), [ticket_id])
        row = cursor.fetchone()
    return _seen_in(viewer, None if row is None else row[1:])


def _seen_in(viewer: Viewer, scope: tuple | None) -> tuple[int, int | None] | None:
    """``_seen``'s answer from the ticket's scope columns (None: no such
    ticket). The rule is ``can_view``, the one the API and the pages apply."""
    if scope is None:
        return None
    buyer_id, merchant_id, party, last_seq, last_public_seq, merged_into_id = scope
    if not can_view(viewer, buyer_id=buyer_id, merchant_id=merchant_id, party=party):
        return None
    return (last_seq if sees_internal_notes(viewer) else last_public_seq), merged_into_id


_SCOPE_COLUMNS = ("id", "buyer", "merchant", "party", "last_seq", "last_public_seq", "merged_into")


@functools.cache
def _ticket_scope_sql(where: str = "") -> str:
    """``SELECT`` of the columns ``_seen_in`` reads, the key first, with the
    table's and columns' names taken from the model: of one ticket by primary
    key, or of those ``where`` names (``_scopes``)."""
    meta, quote = Ticket._meta, connection.ops.quote_name
    columns = ", ".join(quote(meta.get_field(name).column) for name in _SCOPE_COLUMNS)
    return f"SELECT {columns} FROM {quote(meta.db_table)} WHERE {where or quote(meta.pk.column) + ' = %s'}"


# how long a socket's ``sync`` waits for others to be read with it. At the peak a worker's pages
# sync ~75 times a second (docs/SCALING.md): fifteen in one statement and one trip to the pool,
# where each was a trip and a statement of its own. A page asks every 20 s; a fifth of a second
# more is nothing to it (nor to a typing frame's scope check, once in SCOPE_TTL_S)
SYNC_WINDOW_S = 0.2


def _scopes(ticket_ids: list[int]) -> dict[int, tuple]:
    """The scope columns of each ticket found, by id: one statement for every
    socket's ``sync`` (and typing's scope check) of the process in a window."""
    where, params = among(column(Ticket, "id"), ticket_ids)
    with prepared_cursor() as cursor:
        cursor.execute(_ticket_scope_sql(where), params)
        return {row[0]: row[1:] for row in cursor.fetchall()}


_scope_reads = PerLoop(lambda: BatchedRead(lambda ticket_ids: in_pool(_scopes)(ticket_ids), window_s=SYNC_WINDOW_S))


REPLAY_LIMIT = 1000  # frames per replay: the page syncs again for the rest


def _stored_after(viewer: Viewer, ticket_id: int, seq: int) -> list[dict]:
    """The frames of the messages after ``seq`` that the viewer may see, in
    order. One query, its SQL written once per process (the ORM spent four
    times longer building it than PostgreSQL spent answering) and prepared
    on each connection (every reconnect after an outage runs it): the messages,
    their authors' names and whether each has attachments, which are read
    (one more query) only when some do."""
    user_model = get_user_model()
    with prepared_cursor() as cursor:
        cursor.execute(_replay_sql(with_notes=sees_internal_notes(viewer)), [ticket_id, seq])
        rows = cursor.fetchall()
    messages = []
    for row in rows:
        message = _REPLAYED.build(row[:_REPLAYED.width])
        username, display_name, first_name, last_name, message.has_files = row[_REPLAYED.width:]
        if message.author_id is not None:
            # the fields ``User.name`` reads, so the frame names the author as everywhere else
            message.author = user_model(pk=message.author_id, username=username, display_name=display_name,
                                        first_name=first_name, last_name=last_name)
        messages.append(message)
    prefetch_related_objects([m for m in messages if m.has_files], "attachments")
    return [message_payload(m) for m in messages]


_REPLAYED = Columns(Message, "m")


@functools.cache
def _replay_sql(*, with_notes: bool) -> str:
    """The replay's ``SELECT``, names taken from the models: the message's
    columns as ``_REPLAYED`` reads them, its author's names, whether it has
    attachments."""
    quote = connection.ops.quote_name
    message, attachment, user = Message._meta, Attachment._meta, get_user_model()._meta

    def column(meta, name: str) -> str:
        return quote(meta.get_field(name).column)

    fields = _REPLAYED.sql()
    author = ", ".join(f"u.{column(user, name)} AS author_{name}"
                       for name in ("username", "display_name", "first_name", "last_name"))
    return (
        f"SELECT {fields}, {author}, EXISTS (SELECT 1 FROM {quote(attachment.db_table)} a"
        f" WHERE a.{column(attachment, 'message')} = m.{quote(message.pk.column)}) AS has_files"
        f" FROM {quote(message.db_table)} m"
        f" LEFT JOIN {quote(user.db_table)} u ON u.{quote(user.pk.column)} = m.{column(message, 'author')}"
        f" WHERE m.{column(message, 'ticket')} = %s AND m.{column(message, 'seq')} > %s"
        + ("" if with_notes else f" AND NOT m.{column(message, 'internal')}")
        + f" ORDER BY m.{column(message, 'seq')} LIMIT {REPLAY_LIMIT}"
    )


def _viewer_key(channel_name: str) -> str:
    """A stable, opaque id for one open socket (one person may have two tabs)."""
    import hashlib

    return hashlib.blake2s(channel_name.encode(), digest_size=6).hexdigest()
