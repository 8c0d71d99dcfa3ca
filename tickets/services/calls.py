"""The hotline: an agent logs a call, on a new ``phone`` ticket or on the
buyer's open one."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import roles
from tickets import rules
from tickets.errors import InvalidInput, PermissionDenied, TicketClosed
from tickets.models import Channel, PhoneCall, TicketEvent
from tickets.selectors import get_ticket_for
from tickets.services.conversation import append_message
from tickets.services.tickets import open_ticket_in
from tickets.services.transitions import run_transition

MAX_CALL_S = 4 * 3600
# a call is logged while or soon after it happens: not from the future, not from last month
CLOCK_SKEW = timedelta(minutes=5)
LOG_WINDOW = timedelta(days=7)
PHONE = re.compile(r"^\+?[0-9][0-9 \-]{2,30}$")


def clean_phone(raw: str | None) -> str:
    """A caller's number as typed (digits, spaces, dashes, a leading +) with
    the separators dropped; empty when not given."""
    raw = (raw or "").strip()
    if not raw:
        return ""
    if not PHONE.fullmatch(raw):
        raise InvalidInput("caller_phone is a phone number (digits, an optional leading +).", field="caller_phone")
    return re.sub(r"[ \-]", "", raw)


def _check_call(*, started_at: datetime, duration_s: int, notes: str, direction: str, now: datetime) -> str:
    if not isinstance(started_at, datetime) or timezone.is_naive(started_at):
        raise InvalidInput("started_at is a time with its zone.", field="started_at")
    if started_at > now + CLOCK_SKEW:
        raise InvalidInput("started_at is in the future.", field="started_at")
    if started_at < now - LOG_WINDOW:
        raise InvalidInput("A call is logged within 7 days of it.", field="started_at")
    if isinstance(duration_s, bool) or not isinstance(duration_s, int) or not 0 <= duration_s <= MAX_CALL_S:
        raise InvalidInput("duration_s is 0 to 14400 seconds.", field="duration_s")
    if direction not in PhoneCall.Direction.values:
        raise InvalidInput(f"Unknown direction {direction!r}.", field="direction")
    notes = (notes or "").strip()
    if not notes:
        raise InvalidInput("Write what the call was about.", field="notes")
    if len(notes) > settings.BODY_MAX_CHARS:
        raise InvalidInput(f"notes are at most {settings.BODY_MAX_CHARS} characters.", field="notes")
    return notes


@transaction.atomic(durable=True)
def log_call(
    *, actor, started_at: datetime, duration_s: int, notes: str, direction: str = PhoneCall.Direction.INBOUND,
    caller_phone: str = "", ticket_id: int | None = None, buyer_id: int | None = None, order_id: int | None = None,
    category: str | None = None, subject: str = "",
) -> PhoneCall:
    """Log one call. With ``ticket_id`` it joins that ticket (still open to
    messages); otherwise it opens a ``phone`` ticket for the buyer (``buyer_id``
    or the order's) with ``category`` and ``subject``, the notes its first
    message, held by the agent who took the call. On an open ticket the notes
    join the conversation as an internal note. The timeline records the call;
    an answered call answers the buyer (the first response, when there was
    none, is the call's end)."""
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff log calls.")
    now = timezone.now()
    notes = _check_call(started_at=started_at, duration_s=duration_s, notes=notes, direction=direction, now=now)
    caller_phone = clean_phone(caller_phone)
    if ticket_id is not None:
        if buyer_id is not None or order_id is not None or category:
            raise InvalidInput("Give ticket_id, or the buyer/order and category of a new ticket, not both.",
                               field="ticket_id")
        ticket = get_ticket_for(user=actor, ticket_id=ticket_id, lock=True)
        if not rules.may_write(status=ticket.status):
            raise TicketClosed()
        # the notes join the conversation for staff: what was said on the phone
        message = append_message(ticket=ticket, author=actor, body=notes, internal=True, now=now)
    else:
        if not category:
            raise InvalidInput("category is required for a new phone ticket.", field="category")
        subject = (subject or "").strip() or notes.splitlines()[0][:80]
        ticket = open_ticket_in(actor=actor, category=category, subject=subject, body=notes, order_id=order_id,
                                buyer_id=buyer_id, channel=Channel.PHONE)
        # new in this transaction: nobody else sees the row before the commit, so no lock is needed
        message = ticket.messages.get(seq=1)  # the buyer's request as the agent wrote it down
        # whoever took the call holds the ticket it opened
        run_transition(ticket=ticket, name="assign", actor=actor, now=now, assignee=actor,
                       event_data={"reason": "phone_call"})
    call = PhoneCall.objects.create(
        ticket=ticket, agent=actor, direction=direction, caller_phone=caller_phone, started_at=started_at,
        duration_s=duration_s, notes=notes, message=message, created_at=now,
    )
    if ticket.first_response_at is None and duration_s > 0:
        # a call that was answered answered the buyer (a missed call did not)
        ended_at = min(started_at + timedelta(seconds=duration_s), now)
        ticket.first_response_at = max(ended_at, ticket.created_at)
        ticket.save(update_fields=["first_response_at", "updated_at"])
    TicketEvent.objects.create(ticket=ticket, kind="phone_call", actor=actor, created_at=now, data={
        "call_id": call.pk, "direction": direction, "started_at": started_at.isoformat(),
        "duration_s": duration_s, "caller_phone": caller_phone,
    })
    return call


__all__ = ["clean_phone", "log_call"]
