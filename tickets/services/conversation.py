"""Appending to a ticket's conversation inside the caller's transaction:
people's messages and the system's notices, with a gap-free ``seq``."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import translation
from django.utils.translation import gettext, gettext_noop

from accounts import roles
from tickets import events
from tickets.models import Message, Ticket


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
    notice: str = "",
) -> Message:
    """Give the message the ticket's next ``seq``. ``ticket`` is locked (or
    new) in the caller's transaction, so the counter has no gaps or repeats:
    a rolled-back message rolls its number back with it."""
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
    ticket.save(update_fields=update)
    message = Message.objects.create(
        ticket=ticket, seq=ticket.last_seq, author=author, author_role=role, body=body,
        internal=internal, client_msg_id=client_msg_id, created_at=now, notice=notice,
    )
    events.message_posted(message, prev_public_seq=prev_public_seq)
    return message


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
