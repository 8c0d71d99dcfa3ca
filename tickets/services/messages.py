"""The conversation: messages with a gap-free per-ticket ``seq``, and CSAT."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts import roles
from core import doors
from tickets import events, rules
from tickets.errors import (
    AlreadyRated, Conflict, HeldByOther, InvalidInput, NotResolved, PermissionDenied, TicketClosed,
)
from tickets.models import Message, Party, Rating, ReadMark, Ticket, TicketEvent
from tickets.selectors import get_ticket_for
from tickets.services.attachments import attachments_to_claim, clean_attachment_ids
from tickets.services.conversation import append_message
from tickets.services.transitions import run_transition

__all__ = ["append_message", "mark_read", "post_message", "rate_ticket"]


@transaction.atomic(durable=True)
def post_message(
    *, actor, ticket_id: int, body: str, internal: bool = False, client_msg_id: str | None = None,
    confirm_held: bool = True, ip: str | None = None, device: str = "", attachment_ids=None,
) -> Message:
    """Post to a ticket's conversation; internal notes are staff-only.

    A buyer's answer to a ticket waiting on the buyer (or the merchant's to
    one waiting on the merchant) resumes it and its SLA clock. Sending again
    with the same ``client_msg_id`` returns the first message. With
    ``confirm_held=False`` (the console asks first) a staff reply on a ticket
    another agent holds is refused with 409 ``held_by_other``; the check runs
    under the ticket's lock, so a ticket taken a moment ago counts.

    ``attachment_ids`` (uploaded by the actor to this ticket, not yet on a
    message) go with the message, which may then have no text; any other id
    refuses the whole message with ``attachment_unavailable``.
    """
    now = timezone.now()
    body = (body or "").strip()
    attachment_ids = clean_attachment_ids(attachment_ids)
    if not body and not attachment_ids:
        raise InvalidInput("body is required.", field="body")
    if len(body) > settings.BODY_MAX_CHARS:
        raise InvalidInput(f"body is longer than {settings.BODY_MAX_CHARS} characters.", field="body")
    if client_msg_id is not None and (not client_msg_id or len(client_msg_id) > 64):
        raise InvalidInput("client_msg_id is 1–64 characters.", field="client_msg_id")
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id, lock=True)
    if ticket.buyer_id == actor.pk:
        # a blacklisted buyer's messages are refused (403 blacklisted, "system busy")
        doors.check(door=doors.CHAT, user=actor, ip=ip, device=device, now=now)
    if internal and not roles.is_agent(actor):
        raise PermissionDenied("Only staff write internal notes.")
    if client_msg_id:
        existing = ticket.messages.filter(client_msg_id=client_msg_id).prefetch_related("attachments").first()
        if existing is not None:
            if existing.author_id != actor.pk:
                raise Conflict("That client message id belongs to another author.")
            return existing
    if not rules.may_write(status=ticket.status):
        raise TicketClosed()
    if (not confirm_held and not internal and roles.is_agent(actor)
            and ticket.assignee_id not in (None, actor.pk)):
        raise HeldByOther(holder=ticket.assignee.name)
    attachments = attachments_to_claim(ticket=ticket, author_id=actor.pk, ids=attachment_ids)
    message = append_message(
        ticket=ticket, author=actor, body=body, internal=internal, now=now, client_msg_id=client_msg_id,
        attachments=attachments,
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
    viewer = rules.viewer_of(actor)
    already = Rating.objects.filter(ticket=ticket).exists()
    if not rules.may_rate(viewer=viewer, buyer_id=ticket.buyer_id, party=ticket.party, status=ticket.status,
                          already_rated=already):
        # the same rule, said precisely
        if ticket.buyer_id != actor.pk or ticket.party == Party.MERCHANT or not roles.is_buyer(actor):
            raise PermissionDenied("Only the ticket's buyer rates it.")
        if ticket.status not in (Ticket.Status.RESOLVED, Ticket.Status.CLOSED):
            raise NotResolved()
        raise AlreadyRated()
    now = timezone.now()
    try:
        with transaction.atomic():
            rating = Rating.objects.create(ticket=ticket, buyer=actor, score=score, comment=comment, created_at=now)
    except IntegrityError:
        raise AlreadyRated() from None
    TicketEvent.objects.create(ticket=ticket, kind="rated", actor=actor, data={"score": score}, created_at=now)
    return rating


def mark_read(*, actor, ticket_id: int, seq: int) -> int:
    """``actor`` has seen the conversation up to ``seq``; the mark only moves
    forward and never past the last message. Returns the mark now stored."""
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise InvalidInput("seq is a non-negative integer.", field="seq")
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id)
    seq = min(seq, ticket.last_seq)
    now = timezone.now()
    # one statement, insert or move forward: two tabs marking at once cannot move it backwards
    table = ReadMark._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (ticket_id, user_id, seq, updated_at) VALUES (%s, %s, %s, %s) "
            f"ON CONFLICT (ticket_id, user_id) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at "
            f"WHERE {table}.seq < excluded.seq",
            [ticket.pk, actor.pk, seq, now],
        )
        changed = cursor.rowcount > 0
    if changed:
        events.read_marked(ticket=ticket, user=actor, seq=seq)
        return seq
    return ReadMark.objects.filter(ticket=ticket, user=actor).values_list("seq", flat=True).first() or 0
