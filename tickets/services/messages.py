"""The conversation: messages with a gap-free per-ticket ``seq``, and CSAT."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts import roles
from tickets import events
from tickets.errors import AlreadyRated, Conflict, InvalidInput, NotResolved, PermissionDenied, TicketClosed
from tickets.models import Message, Party, Rating, Ticket, TicketEvent
from tickets.selectors import get_ticket_for
from tickets.services.transitions import run_transition


def author_role_of(user) -> str:
    if user is None:
        return Message.AuthorRole.SYSTEM
    if roles.is_agent(user):
        return Message.AuthorRole.AGENT
    if roles.is_merchant_staff(user):
        return Message.AuthorRole.MERCHANT
    return Message.AuthorRole.BUYER


def append_message(
    *, ticket: Ticket, author, body: str, internal: bool, now: datetime, client_msg_id: str | None = None
) -> Message:
    """Give the message the ticket's next ``seq``. ``ticket`` is locked (or
    new) in the caller's transaction, so the counter has no gaps or repeats:
    a rolled-back message rolls its number back with it."""
    assert transaction.get_connection().in_atomic_block, "append_message needs the caller's transaction"
    role = author_role_of(author)
    ticket.last_seq += 1
    ticket.last_message_at = now
    update = ["last_seq", "last_message_at", "updated_at"]
    # the opening message (seq 1) is the request itself, never a response
    if role == Message.AuthorRole.AGENT and not internal and ticket.first_response_at is None and ticket.last_seq > 1:
        ticket.first_response_at = now
        update.append("first_response_at")
    ticket.save(update_fields=update)
    message = Message.objects.create(
        ticket=ticket, seq=ticket.last_seq, author=author, author_role=role, body=body,
        internal=internal, client_msg_id=client_msg_id, created_at=now,
    )
    events.message_posted(message)
    return message


@transaction.atomic(durable=True)
def post_message(
    *, actor, ticket_id: int, body: str, internal: bool = False, client_msg_id: str | None = None
) -> Message:
    """Post to a ticket's conversation; internal notes are staff-only.

    A buyer's answer to a ticket waiting on the buyer (or the merchant's to
    one waiting on the merchant) resumes it and its SLA clock. Sending again
    with the same ``client_msg_id`` returns the first message.
    """
    now = timezone.now()
    body = (body or "").strip()
    if not body:
        raise InvalidInput("body is required.", field="body")
    if len(body) > settings.BODY_MAX_CHARS:
        raise InvalidInput(f"body is longer than {settings.BODY_MAX_CHARS} characters.", field="body")
    if client_msg_id is not None and (not client_msg_id or len(client_msg_id) > 64):
        raise InvalidInput("client_msg_id is 1–64 characters.", field="client_msg_id")
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id, lock=True)
    if internal and not roles.is_agent(actor):
        raise PermissionDenied("Only staff write internal notes.")
    if client_msg_id:
        existing = ticket.messages.filter(client_msg_id=client_msg_id).first()
        if existing is not None:
            if existing.author_id != actor.pk:
                raise Conflict("That client message id belongs to another author.")
            return existing
    if ticket.status == Ticket.Status.CLOSED:
        raise TicketClosed()
    message = append_message(
        ticket=ticket, author=actor, body=body, internal=internal, now=now, client_msg_id=client_msg_id
    )
    role = message.author_role
    if (role == Message.AuthorRole.BUYER and ticket.status == Ticket.Status.WAITING_BUYER) or (
        role == Message.AuthorRole.MERCHANT and ticket.status == Ticket.Status.WAITING_MERCHANT
    ):
        run_transition(
            ticket=ticket, name="resume", actor=actor, now=now, system=True,
            event_data={"reason": f"{role}_replied"},
        )
    return message


@transaction.atomic(durable=True)
def rate_ticket(*, actor, ticket_id: int, score: int, comment: str = "") -> Rating:
    """The ticket's buyer rates it 0–10, once, after resolution."""
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 10:
        raise InvalidInput("score is an integer from 0 to 10.", field="score")
    comment = (comment or "").strip()
    if len(comment) > 500:
        raise InvalidInput("comment is at most 500 characters.", field="comment")
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id, lock=True)
    if ticket.buyer_id != actor.pk or ticket.party == Party.MERCHANT:
        raise PermissionDenied("Only the ticket's buyer rates it.")
    if ticket.status not in (Ticket.Status.RESOLVED, Ticket.Status.CLOSED):
        raise NotResolved()
    if Rating.objects.filter(ticket=ticket).exists():
        raise AlreadyRated()
    now = timezone.now()
    try:
        with transaction.atomic():
            rating = Rating.objects.create(ticket=ticket, buyer=actor, score=score, comment=comment, created_at=now)
    except IntegrityError:
        raise AlreadyRated() from None
    TicketEvent.objects.create(ticket=ticket, kind="rated", actor=actor, data={"score": score}, created_at=now)
    return rating
