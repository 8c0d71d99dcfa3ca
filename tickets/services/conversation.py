"""Appending to a ticket's conversation inside the caller's transaction:
people's messages and the system's notices, with a gap-free ``seq``; and the
search fold, which brings what was said into the tickets' search text."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import reduce
from operator import or_

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone, translation
from django.utils.translation import gettext, gettext_noop

from accounts import roles
from core import rows
from tickets import events, search
from tickets.locks import lock_ticket_rows
from tickets.models import Attachment, Channel, Message, SearchFold, Ticket
from tickets.services.attachments import claim_attachments


def author_role_of(user) -> str:
    if user is None:
        return Message.AuthorRole.SYSTEM
    if roles.is_agent(user):
        return Message.AuthorRole.AGENT
    if roles.is_merchant_staff(user):
        return Message.AuthorRole.MERCHANT
    return Message.AuthorRole.BUYER


def append_message(
    *, ticket: Ticket, author, body: str, internal: bool, now: datetime, client_msg_id: str | None = None,
    notice: str = "", attachments: list | None = None,
) -> Message:
    """Give the message the ticket's next ``seq``. ``ticket`` is locked (or
    new) in the caller's transaction, so the counter has no gaps or repeats:
    a rolled-back message rolls its number back with it. ``attachments``
    (checked by ``attachments_to_claim``) are claimed by it in one UPDATE
    before its frame is built."""
    assert transaction.get_connection().in_atomic_block, "append_message needs the caller's transaction"
    role = author_role_of(author)
    prev_public_seq = ticket.last_public_seq
    ticket.last_seq += 1
    ticket.last_message_at = now
    update = ["last_seq", "last_message_at", "updated_at"]
    if not internal:
        ticket.last_public_seq = ticket.last_seq
        update.append("last_public_seq")
    # the opening message (seq 1) is the request itself, never a response
    if role == Message.AuthorRole.AGENT and not internal and ticket.first_response_at is None and ticket.last_seq > 1:
        ticket.first_response_at = now
        update.append("first_response_at")
    waited_from = _answer_wait(ticket, role=role, internal=internal, now=now, update=update)
    # its words reach the ticket's search text with the next fold (``fold_search_text``)
    rows.update(ticket, update)
    message = Message(
        ticket=ticket, seq=ticket.last_seq, author=author, author_role=role, body=body,
        internal=internal, client_msg_id=client_msg_id, created_at=now, notice=notice, waited_from=waited_from,
    )
    rows.insert(message)
    claim_attachments(message=message, attachments=attachments or [])
    events.message_posted(message, prev_public_seq=prev_public_seq)
    return message


def buyer_wait(*, channel: str, role: str, internal: bool, waiting_since: datetime | None, now: datetime,
               ) -> tuple[datetime | None, datetime | None]:
    """The chat report's stored figure, for one message: the ticket's
    ``buyer_waiting_since`` after it, and the message's ``waited_from``. A
    public buyer message starts a wait (unless one is open), a public agent
    reply ends it and, in a chat ticket, keeps when it began; internal notes,
    merchants and the system's notices leave it as it is. Every path that
    appends a message asks this one function (``append_message``, the chat
    batch, a ticket's opening message)."""
    if internal:
        return waiting_since, None
    if role == Message.AuthorRole.BUYER:
        return waiting_since or now, None
    if role == Message.AuthorRole.AGENT:
        return None, waiting_since if channel == Channel.CHAT else None
    return waiting_since, None


def _answer_wait(ticket: Ticket, *, role: str, internal: bool, now: datetime, update: list[str]) -> datetime | None:
    waiting, waited_from = buyer_wait(channel=ticket.channel, role=role, internal=internal,
                                      waiting_since=ticket.buyer_waiting_since, now=now)
    if waiting != ticket.buyer_waiting_since:
        ticket.buyer_waiting_since = waiting
        update.append("buyer_waiting_since")
    return waited_from


# What the conversation is told when the ticket moves, in the ticket's language.
# The texts are gettext msgids; the notice kind lets clients style them.
NOTICE_TEXTS = {
    "assigned": gettext_noop("{agent} is now handling your request."),
    "merchant_invited": gettext_noop("The merchant {merchant} has been invited into this conversation."),
    "resolved": gettext_noop("This request is resolved. Please rate our service from 0 to 10."),
    "reopened": gettext_noop("This request has been reopened."),
    "logistics_exception": gettext_noop(
        "The carrier reports a problem with your parcel {tracking_no}: {what}. We are on it and will keep you posted here."
    ),
    "merged_away": gettext_noop(
        "This request has been merged into request #{target}; the conversation continues there."
    ),
    "merged_in": gettext_noop("The conversation of request #{source} (about the same order) follows, merged into this one."),
    "parcel_intercepted": gettext_noop(
        "We have asked the carrier to stop parcel {tracking_no} and the merchant to send your order again by {deadline}."
    ),
}


def append_notice(*, ticket: Ticket, notice: str, now: datetime, **params: str) -> Message:
    """A system message announcing ``notice`` to everyone in the conversation
    (stored, so it replays like any message). Inside the caller's transaction."""
    with translation.override(ticket.language):
        body = gettext(NOTICE_TEXTS[notice]).format(**params)
    return append_message(ticket=ticket, author=None, body=body, internal=False, now=now, notice=notice)


def _copy_attachments(*, originals: list[Message], copies: list[Message], ticket: Ticket) -> None:
    """The copies carry their originals' pictures and PDFs: new rows on the
    target ticket pointing at the same stored files (files are never deleted
    once claimed), so the target's conversation shows them to whoever may see
    it. Two statements whatever their number; the copies' frames list them."""
    if any(copy.pk is None for copy in copies):  # a backend that does not return ids from a bulk insert
        ids = dict(Message.objects.filter(ticket=ticket, seq__in=[c.seq for c in copies]).values_list("seq", "pk"))
        for copy in copies:
            copy.pk = copy.id = ids[copy.seq]
    copy_of = {original.pk: copy for original, copy in zip(originals, copies)}
    moved: dict[int, list[Attachment]] = {}
    copied = []
    for attachment in Attachment.objects.filter(message_id__in=list(copy_of)).order_by("pk"):
        copy = copy_of[attachment.message_id]
        row = Attachment(ticket=ticket, uploaded_by_id=attachment.uploaded_by_id, message=copy, file=attachment.file.name,
                         thumbnail=attachment.thumbnail.name, content_type=attachment.content_type,
                         size_bytes=attachment.size_bytes, created_at=attachment.created_at)
        copied.append(row)
        moved.setdefault(copy.seq, []).append(row)
    if copied:
        Attachment.objects.bulk_create(copied)
    for copy in copies:
        copy._prefetched_objects_cache = {"attachments": moved.get(copy.seq, [])}


def append_copies(*, ticket: Ticket, messages: list[Message], now: datetime) -> list[Message]:
    """Append copies of ``messages`` (another ticket's, in their order) to
    ``ticket``'s conversation with its next seqs, in two statements whatever
    their number (a merge). ``ticket`` is locked in the caller's transaction,
    so the seqs stay gap-free. A copy keeps its author, role, body, notice,
    internal flag and when it was said; it has no client id (those are unique
    per ticket and belong to the original)."""
    assert transaction.get_connection().in_atomic_block, "append_copies needs the caller's transaction"
    if not messages:
        return []
    copies: list[Message] = []
    prev_public: list[int] = []
    seq, public_seq = ticket.last_seq, ticket.last_public_seq
    for original in messages:
        seq += 1
        prev_public.append(public_seq)
        copies.append(Message(
            ticket=ticket, seq=seq, author=original.author, author_role=original.author_role, body=original.body,
            internal=original.internal, notice=original.notice, created_at=original.created_at,
        ))
        if not original.internal:
            public_seq = seq
    Message.objects.bulk_create(copies)
    _copy_attachments(originals=messages, copies=copies, ticket=ticket)
    ticket.last_seq, ticket.last_public_seq = seq, public_seq
    ticket.last_message_at = now
    # a merge is rare and its copies keep their original times, which the
    # periodic fold does not look back to: the target's text takes them now
    ticket.save(update_fields=["last_seq", "last_public_seq", "last_message_at", "updated_at",
                               *_fold_locked(ticket)])
    for copy, before in zip(copies, prev_public):
        events.message_posted(copy, prev_public_seq=before)
    return copies


# --- the search fold ---------------------------------------------------------------------
#
# What people say after a ticket's opening request reaches its search text
# (``Ticket.search_text``, ``tickets.search``) here, a ticket's new messages at
# once, rather than with each message: the text is under a trigram index, so
# every append wrote a new version of the ticket's row into all its indexes and
# PostgreSQL took the trigrams of the whole conversation again (two fifths of
# its CPU per chat message; PERFORMANCE.md, 2026-12-05). A word is searchable
# within about one fold's period (15 s: the beat schedule, settings) of being said.

# a message is looked for this long before the last fold began: its time is
# taken before its transaction commits, and a transaction of a few seconds
# must not hide it from the fold that ran meanwhile
FOLD_SLACK = timedelta(minutes=1)
FOLD_CHUNK = 200  # tickets locked together, each chunk in a short transaction of its own


def fold_search_text(*, now: datetime | None = None) -> int:
    """Bring into each ticket's search text the public words said since its
    ``searched_seq``, for every ticket with a message stamped since the last
    fold began (less ``FOLD_SLACK``). Returns how many tickets changed.

    Exact under concurrency: a message takes its seq under its ticket's lock
    and commits with the ticket's new ``last_seq``, and the fold reads a
    ticket's messages under the same lock, so it sees every message up to the
    ``last_seq`` it records; a message committed later is above it and waits
    for the next fold. Two folds at once change each ticket once."""
    now = now or timezone.now()
    state, _ = SearchFold.objects.get_or_create(pk=1)
    said = Message.objects.order_by()
    if state.through is not None:
        said = said.filter(created_at__gte=state.through - FOLD_SLACK)
    ticket_ids = sorted(set(said.values_list("ticket_id", flat=True).distinct()))
    changed = sum(_fold_chunk(ticket_ids[i:i + FOLD_CHUNK]) for i in range(0, len(ticket_ids), FOLD_CHUNK))
    SearchFold.objects.filter(Q(through__isnull=True) | Q(through__lt=now), pk=1).update(through=now)
    return changed


@transaction.atomic
def _fold_chunk(ticket_ids: list[int]) -> int:
    lagging = lock_ticket_rows(ticket_ids, "id, search_text, searched_seq, last_seq",
                               where="last_public_seq > searched_seq")
    if not lagging:
        return 0
    bodies = _said_since({ticket_id: searched for ticket_id, _, searched, _ in lagging})
    values = [(ticket_id, search.extend(text, *bodies.get(ticket_id, [])), last_seq)
              for ticket_id, text, _, last_seq in lagging]
    table = connection.ops.quote_name(Ticket._meta.db_table)
    rows_sql = ", ".join(["(%s, %s, %s)"] * len(values))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH v(id, text, seq) AS (VALUES {rows_sql}) "
            f"UPDATE {table} SET search_text = v.text, searched_seq = v.seq FROM v WHERE {table}.id = v.id",
            [value for row in values for value in row],
        )
    return len(values)


def _said_since(searched: dict[int, int]) -> dict[int, list[str]]:
    """Each ticket's searchable bodies after its seq, in order: people's public
    words (internal notes are not searchable: a buyer searching their own
    tickets must not find a staff note's words; nor are the system's notices)."""
    after = reduce(or_, (Q(ticket_id=ticket_id, seq__gt=seq) for ticket_id, seq in searched.items()))
    bodies: dict[int, list[str]] = {}
    for ticket_id, body in (Message.objects.filter(after, internal=False, notice="")
                            .order_by("ticket_id", "seq").values_list("ticket_id", "body")):
        bodies.setdefault(ticket_id, []).append(body)
    return bodies


def _fold_locked(ticket: Ticket) -> list[str]:
    """The fold for one ticket the caller has locked: its text and mark set on
    the instance; returns the fields to save."""
    if ticket.last_public_seq <= ticket.searched_seq:
        return []
    if "search_text" in ticket.get_deferred_fields():
        ticket.refresh_from_db(fields=["search_text"])
    ticket.search_text = search.extend(ticket.search_text,
                                       *_said_since({ticket.pk: ticket.searched_seq}).get(ticket.pk, []))
    ticket.searched_seq = ticket.last_seq
    return ["search_text", "searched_seq"]
