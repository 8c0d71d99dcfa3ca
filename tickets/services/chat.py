"""The chat sockets' writes, in batches: messages and read marks from every
socket of a process, stored in one transaction (``tickets/chat_writer.py``
collects them and calls ``store_chat_batch`` on its own thread).

The batch keeps every guarantee of ``post_message``: the tickets are locked
(in id order, so two processes' batches cannot deadlock), the scope is checked
on the locked row with ``tickets.rules.can_view``, a ``client_msg_id`` sent
again answers with the first message, ``seq`` stays gap-free per ticket. A
message that needs more than an append (a closed ticket, one whose reply
resumes a ticket waiting on its author) takes the full ``post_message`` in its
own transaction after the batch.

Four statements whatever the batch holds: lock the tickets, look up repeated
client ids, insert the messages, update the tickets' counters (plus one upsert
of read marks when there are any, and when messages carry attachments one
query to check them and one UPDATE to claim them, however many).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core import doors
from core.errors import DomainError
from tickets import events
from tickets.errors import AttachmentUnavailable, Conflict, InvalidInput, TicketNotFound
from tickets.models import Attachment, Message, ReadMark, Ticket
from tickets.services.attachments import claimable
from tickets.services.conversation import buyer_wait
from tickets.locks import lock_ticket_rows
from tickets import rules
from tickets.rules import Viewer, can_view_ticket


@dataclass(frozen=True)
class ChatPost:
    viewer: Viewer
    ticket_id: int
    body: str
    client_msg_id: str | None
    ip: str | None = None  # the socket's client, for the doors' guards
    device: str = ""
    attachment_ids: tuple[int, ...] = ()  # uploaded by this author to this ticket, claimed by the message


@dataclass(frozen=True)
class ChatRead:
    viewer: Viewer
    ticket_id: int
    seq: int


@dataclass
class Stored:
    """One message as stored (or found again by its client id), with where it
    goes once the batch commits."""

    seq: int
    payload: dict
    events: list[tuple[str, dict]] = field(default_factory=list)
    replayed: bool = False


@dataclass
class BatchOutcome:
    results: list[Stored | DomainError | None]  # per post, in order; None: needs post_message
    reads: list[tuple[ChatRead, int]]  # read marks that moved, with the seq stored
    events: list[tuple[str, dict]]  # to publish after commit, in seq order per ticket


def clean_body(body, *, with_attachments: bool = False) -> str:
    """The message's text; it may be empty only when files go with it."""
    body = (body or "").strip() if isinstance(body, str) else ""
    if not body and not with_attachments:
        raise InvalidInput("body is required.", field="body")
    if len(body) > settings.BODY_MAX_CHARS:
        raise InvalidInput(f"body is longer than {settings.BODY_MAX_CHARS} characters.", field="body")
    return body


def clean_client_id(client_msg_id) -> str | None:
    if client_msg_id is None:
        return None
    if not isinstance(client_msg_id, str) or not 1 <= len(client_msg_id) <= 64:
        raise InvalidInput("client_msg_id is 1–64 characters.", field="client_msg_id")
    return client_msg_id


def _needs_service(ticket, viewer: Viewer) -> bool:
    """A reply that resumes a ticket waiting on its author, or a message on a
    closed ticket (refused there): not a plain append."""
    role = viewer.message_role
    return (not rules.may_write(status=ticket.status)
            or (ticket.status == Ticket.Status.WAITING_BUYER and role == Message.AuthorRole.BUYER)
            or (ticket.status == Ticket.Status.WAITING_MERCHANT and role == Message.AuthorRole.MERCHANT))


@transaction.atomic(durable=True)
def store_chat_batch(*, posts: list[ChatPost], reads: list[ChatRead], now: datetime | None = None) -> BatchOutcome:
    now = now or timezone.now()
    ticket_ids = sorted({p.ticket_id for p in posts} | {r.ticket_id for r in reads})
    tickets = _lock_tickets(ticket_ids)
    wanted_ids = {(p.ticket_id, p.client_msg_id) for p in posts if p.client_msg_id}
    known: dict[tuple[int, str], Message] = {}
    if wanted_ids and (repeated := _repeated_client_ids(wanted_ids)):
        # rare: a page sent a message again (after a reconnect); answer with the first
        found = Message.objects.filter(ticket_id__in={t for t, _ in repeated},
                                       client_msg_id__in={c for _, c in repeated}).select_related("author").prefetch_related("attachments")
        known = {(m.ticket_id, m.client_msg_id): m for m in found if (m.ticket_id, m.client_msg_id) in repeated}
    # every attachment the batch's messages name, in one query; claimed below in one UPDATE
    named = {pk for p in posts for pk in p.attachment_ids}
    found_attachments = {a.pk: a for a in Attachment.objects.filter(pk__in=named)} if named else {}
    taken: set[int] = set()
    claims: list[tuple[int, int, int]] = []  # (attachment, ticket, seq)

    refused = _refused_at_the_door(posts, now=now)
    results: list[Stored | DomainError | None] = []
    new_messages: list[tuple[Message, Stored, int]] = []
    changed: dict[int, _TicketRow] = {}
    for post in posts:
        ticket = tickets.get(post.ticket_id)
        if ticket is None or not can_view_ticket(post.viewer, ticket):
            results.append(TicketNotFound())
            continue
        if (refusal := refused.get((post.viewer.user_id, post.ip, post.device))) is not None \
                and ticket.buyer_id == post.viewer.user_id:
            results.append(refusal)
            continue
        key = (ticket.pk, post.client_msg_id)
        if post.client_msg_id and key in known:
            existing = known[key]
            if existing.author_id != post.viewer.user_id:
                results.append(Conflict("That client message id belongs to another author."))
            else:
                results.append(Stored(seq=existing.seq, payload=events.message_payload(existing), replayed=True))
            continue
        if _needs_service(ticket, post.viewer):
            results.append(None)
            continue
        attachments = [found_attachments.get(pk) for pk in post.attachment_ids]
        if not all(a is not None and a.pk not in taken
                   and claimable(a, ticket_id=ticket.pk, author_id=post.viewer.user_id) for a in attachments):
            results.append(AttachmentUnavailable())
            continue
        taken.update(a.pk for a in attachments)
        role = post.viewer.message_role
        prev_public = ticket.last_public_seq
        ticket.last_seq += 1
        ticket.last_public_seq = ticket.last_seq
        ticket.last_message_at = ticket.updated_at = now
        if role == Message.AuthorRole.AGENT and ticket.first_response_at is None and ticket.last_seq > 1:
            ticket.first_response_at = now
        ticket.buyer_waiting_since, waited_from = buyer_wait(
            channel=ticket.channel, role=role, internal=False, waiting_since=ticket.buyer_waiting_since, now=now)
        changed[ticket.pk] = ticket
        message = Message(ticket_id=ticket.pk, seq=ticket.last_seq, author_id=post.viewer.user_id, author_role=role,
                          body=post.body, internal=False, client_msg_id=post.client_msg_id, created_at=now,
                          waited_from=waited_from)
        payload = {
            "type": "message", "ticket_id": ticket.pk, "seq": message.seq,
            "author": {"id": post.viewer.user_id, "role": role, "name": post.viewer.name},
            "author_id": post.viewer.user_id, "body": message.body, "internal": False, "notice": "",
            "created_at": now.isoformat(), "attachments": [events.attachment_payload(a) for a in attachments],
        }
        claims += [(a.pk, ticket.pk, message.seq) for a in attachments]
        stored = Stored(seq=message.seq, payload=payload, events=events.message_events(
            payload, prev_public_seq=prev_public, assignee_id=ticket.assignee_id, merchant_id=ticket.merchant_id,
            party=ticket.party))
        if post.client_msg_id:
            known[key] = message
        new_messages.append((message, stored, ticket.pk))
        results.append(stored)

    if new_messages:
        _insert_messages([m for m, _, _ in new_messages])
        if claims:
            _claim_attachments(claims)
        _update_counters(tickets=list(changed.values()), now=now)
    moved = _store_reads(reads=reads, tickets=tickets, now=now)
    all_events = [event for _, stored, _ in new_messages for event in stored.events]
    for read, seq in moved:
        all_events.append((events.ticket_group(read.ticket_id), {"type": "broadcast", "payload": {
            "type": "read", "ticket_id": read.ticket_id, "seq": seq,
            "author": {"id": read.viewer.user_id, "name": read.viewer.name, "role": read.viewer.role}}}))
    return BatchOutcome(results=results, reads=moved, events=all_events)


def _refused_at_the_door(posts: list[ChatPost], *, now: datetime) -> dict[tuple, DomainError]:
    """The doors' guards (``core.doors``: the blacklist) on each buyer posting
    in the batch, once per buyer, address and device, all in one go (one
    query for the blacklist, however many buyers the batch carries)."""
    people = {(p.viewer.user_id, p.ip, p.device): {"username": p.viewer.username, "ip": p.ip, "device": p.device}
              for p in posts if p.viewer.message_role == "buyer"}
    return doors.check_many(door=doors.CHAT, people=people, now=now) if people else {}


# The batch's statements are written by hand: at a human pace a batch is one
# message, and the ORM's building of five statements was most of its cost
# (and held the GIL the sockets' event loop waits for).

@dataclass
class _TicketRow:
    pk: int
    status: str
    buyer_id: int | None
    merchant_id: int | None
    party: str
    assignee_id: int | None
    last_seq: int
    last_public_seq: int
    first_response_at: object
    channel: str = ""
    buyer_waiting_since: object = None  # the chat report's open wait (``conversation.buyer_wait``)
    last_message_at: object = None
    updated_at: object = None


def _lock_tickets(ticket_ids: list[int]) -> dict[int, _TicketRow]:
    rows = {}
    for row in lock_ticket_rows(ticket_ids, "id, status, buyer_id, merchant_id, party, assignee_id, last_seq, "
                                            "last_public_seq, first_response_at, channel, buyer_waiting_since"):
        ticket = _TicketRow(*row)
        if isinstance(ticket.buyer_waiting_since, str):  # SQLite hands back text
            ticket.buyer_waiting_since = connection.ops.convert_datetimefield_value(
                ticket.buyer_waiting_since, None, connection)
        rows[row[0]] = ticket
    return rows


def _repeated_client_ids(wanted: set[tuple[int, str]]) -> set[tuple[int, str]]:
    table = connection.ops.quote_name(Message._meta.db_table)
    tickets = sorted({t for t, _ in wanted})
    ids = sorted({c for _, c in wanted})
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT ticket_id, client_msg_id FROM {table} WHERE ticket_id IN ({', '.join(['%s'] * len(tickets))}) "
            f"AND client_msg_id IN ({', '.join(['%s'] * len(ids))})",
            [*tickets, *ids],
        )
        return {(row[0], row[1]) for row in cursor.fetchall()} & wanted


def _insert_messages(messages: list[Message]) -> None:
    table = connection.ops.quote_name(Message._meta.db_table)
    stamp = connection.ops.adapt_datetimefield_value
    params: list = []
    for m in messages:
        params += [m.ticket_id, m.seq, m.author_id, m.author_role, m.body, m.internal, m.client_msg_id, m.notice,
                   stamp(m.created_at), stamp(m.waited_from)]
    rows = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"] * len(messages))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (ticket_id, seq, author_id, author_role, body, internal, client_msg_id, notice, "
            f"created_at, waited_from) VALUES {rows}",
            params,
        )


def _claim_attachments(claims: list[tuple[int, int, int]]) -> None:
    """Point the batch's attachments at their new messages in one UPDATE
    (found by ticket and seq: the messages' ids are not read back). The
    tickets are locked, so nothing claimed them since the check; should one
    be taken anyway, the whole batch rolls back."""
    # a plain UPDATE with a CASE (no CTE: Python's sqlite3 reports no row count
    # for a statement that starts with WITH)
    table = connection.ops.quote_name(Attachment._meta.db_table)
    messages = connection.ops.quote_name(Message._meta.db_table)
    whens = " ".join(
        [f"WHEN %s THEN (SELECT m.id FROM {messages} m WHERE m.ticket_id = %s AND m.seq = %s)"] * len(claims))
    params = [value for claim in claims for value in claim] + [claim[0] for claim in claims]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {table} SET message_id = CASE id {whens} END "
            f"WHERE id IN ({', '.join(['%s'] * len(claims))}) AND message_id IS NULL",
            params,
        )
        if cursor.rowcount != len(claims):
            raise AttachmentUnavailable()


def _update_counters(*, tickets: list[_TicketRow], now: datetime) -> None:
    """The batch's tickets' counters in one UPDATE from a VALUES list (Django's
    bulk_update builds a CASE per field per row in Python: most of a batch's
    time at a thousand messages a second). No indexed column changes (what
    was said reaches the search text with the next fold), so on PostgreSQL
    the ticket's row is updated in place, with no index entry (heap-only),
    but for a first response, once per ticket."""
    table = connection.ops.quote_name(Ticket._meta.db_table)
    rows = ", ".join(["(%s, %s, %s, %s, %s)"] * len(tickets))
    params: list = []
    for ticket in tickets:
        params += [ticket.pk, ticket.last_seq, ticket.last_public_seq, 1 if ticket.first_response_at == now else 0,
                   connection.ops.adapt_datetimefield_value(ticket.buyer_waiting_since)]
    stamp = connection.ops.adapt_datetimefield_value(now)
    # a column of NULLs in VALUES is text to PostgreSQL: say what it holds
    waiting = "v.waiting::timestamptz" if connection.vendor == "postgresql" else "v.waiting"
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH v(id, last_seq, last_public_seq, responded, waiting) AS (VALUES {rows}) "
            f"UPDATE {table} SET last_seq = v.last_seq, last_public_seq = v.last_public_seq, "
            f"buyer_waiting_since = {waiting}, "
            f"last_message_at = %s, updated_at = %s, first_response_at = CASE "
            f"WHEN {table}.first_response_at IS NULL AND v.responded = 1 THEN %s ELSE {table}.first_response_at END "
            f"FROM v WHERE {table}.id = v.id",
            [*params, stamp, stamp, stamp],
        )


def _store_reads(*, reads: list[ChatRead], tickets: dict[int, _TicketRow], now: datetime) -> list[tuple[ChatRead, int]]:
    """Read marks move forward only and never past the last message: one
    upsert for the whole batch (the highest seq per person and ticket)."""
    best: dict[tuple[int, int], ChatRead] = {}
    for read in reads:
        ticket = tickets.get(read.ticket_id)
        if ticket is None or not can_view_ticket(read.viewer, ticket):
            continue
        key = (read.ticket_id, read.viewer.user_id)
        seq = min(read.seq, ticket.last_seq)
        if key not in best or seq > best[key].seq:
            best[key] = ChatRead(viewer=read.viewer, ticket_id=read.ticket_id, seq=seq)
    if not best:
        return []
    table = connection.ops.quote_name(ReadMark._meta.db_table)
    rows = list(best.values())
    values = ", ".join(["(%s, %s, %s, %s)"] * len(rows))
    params = []
    stamp = connection.ops.adapt_datetimefield_value(now)
    for read in rows:
        params += [read.ticket_id, read.viewer.user_id, read.seq, stamp]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (ticket_id, user_id, seq, updated_at) VALUES {values} "
            f"ON CONFLICT (ticket_id, user_id) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at "
            f"WHERE {table}.seq < excluded.seq RETURNING ticket_id, user_id",
            params,
        )
        moved = {(row[0], row[1]) for row in cursor.fetchall()}
    return [(read, read.seq) for read in rows if (read.ticket_id, read.viewer.user_id) in moved]
