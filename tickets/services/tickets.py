"""Opening tickets and running their transitions."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from accounts import roles
from core import doors
from core.rows import insert
from merchants import services as merchant_services
from merchants.models import Order
from merchants.selectors import merchant_id_for, visible_order
from tickets import search, sla
from tickets.errors import (
    AssigneeInvalid,
    InvalidInput,
    NoteRequired,
    OrderNotFound,
    PermissionDenied,
    ShiftLimitReached,
    UnknownCategory,
)
from tickets import events
from tickets.models import (
    DISPUTE_CATEGORIES, MERCHANT_CATEGORIES, Category, Channel, Language, Message, Party, Ticket, TicketEvent,
)
from tickets.selectors import get_ticket_for
from tickets.services.conversation import author_role_of, buyer_wait
from tickets.services.people import shift_status
from tickets.services.routing import assign_chat_on_open, pick_queue
from tickets.services.transitions import check_permission, check_source_state, run_transition

User = get_user_model()

SUBJECT_MAX = 200


def _clean_text(value: str | None, *, field: str, max_chars: int, required: bool = True) -> str:
    text = (value or "").strip()
    if required and not text:
        raise InvalidInput(f"{field} is required.", field=field)
    if len(text) > max_chars:
        raise InvalidInput(f"{field} is longer than {max_chars} characters.", field=field)
    return text


@transaction.atomic(durable=True)
def open_ticket(**kwargs) -> Ticket:
    """Open a ticket in its own transaction (see ``open_ticket_in``)."""
    return open_ticket_in(**kwargs)


def open_ticket_in(
    *,
    actor,
    category: str,
    subject: str,
    body: str,
    order_id: int | None = None,
    channel: str | None = None,
    buyer_id: int | None = None,
    grade: str | None = None,
    language: str | None = None,
    ip: str | None = None,
    device: str = "",
) -> Ticket:
    """Open a ticket, route it to a queue and, for a chat, offer it to an agent.

    A buyer opens their own; an agent opens one on a buyer's behalf
    (``buyer_id``, or the order's buyer); merchant staff open one for their
    merchant. Only staff set the grade. The door's guards (``core.doors``:
    the blacklist) see the buyer and, when the buyer asks, the request's
    ``ip`` and ``device``: a listed one is refused (403 ``blacklisted``).
    Runs in the caller's transaction (a logged phone call opens its ticket
    and records the call in one).
    """
    assert transaction.get_connection().in_atomic_block, "open_ticket_in needs the caller's transaction"
    now = timezone.now()
    if category not in Category.values:
        raise UnknownCategory(f"Unknown category {category!r}.")
    subject = _clean_text(subject, field="subject", max_chars=SUBJECT_MAX)
    body = _clean_text(body, field="body", max_chars=settings.BODY_MAX_CHARS)
    channel = channel or Channel.WEB
    if channel not in Channel.values:
        raise InvalidInput(f"Unknown channel {channel!r}.", field="channel")
    language = language or getattr(actor, "language", "") or Language.ZH
    if language not in Language.values:
        raise InvalidInput(f"Unsupported language {language!r}.", field="language")
    if grade is not None and grade not in sla.GRADE_DEADLINES:
        raise InvalidInput(f"Unknown grade {grade!r}.", field="grade")

    is_staff = roles.is_agent(actor)
    order = None
    if order_id is not None:
        order = visible_order(user=actor, order_id=order_id)
        if order is None:
            raise OrderNotFound()

    buyer = None
    merchant_id = order.merchant_id if order else None
    party = Party.MERCHANT if category in MERCHANT_CATEGORIES else Party.BUYER
    if is_staff:
        if buyer_id is not None:
            buyer = User.objects.filter(pk=buyer_id, is_active=True).first()
            if buyer is None or not roles.is_buyer(buyer):
                raise InvalidInput("buyer_id is not a buyer.", field="buyer_id")
            if order and order.buyer_id != buyer.pk:
                raise OrderNotFound("The order does not belong to this buyer.")
        elif order is not None:
            buyer = order.buyer
        elif party != Party.MERCHANT:
            raise InvalidInput("Name the buyer (buyer_id) or the order.", field="buyer_id")
    elif roles.is_buyer(actor):
        if buyer_id is not None and buyer_id != actor.pk:
            raise PermissionDenied("A buyer opens tickets only for themself.")
        if grade is not None:
            raise PermissionDenied("Only staff set a grade.")
        buyer = actor
        party = Party.BUYER
    elif roles.is_merchant_staff(actor):
        if grade is not None:
            raise PermissionDenied("Only staff set a grade.")
        merchant_id = merchant_id_for(user=actor)
        party = Party.MERCHANT
        buyer = order.buyer if order else None
    else:
        raise PermissionDenied("You may not open tickets.")
    if is_staff and buyer is not None:
        # an agent taking a blacklisted buyer's complaint by phone is refused too, told why
        doors.check(door=doors.TICKET, user=buyer, actor=actor, now=now)
    elif not is_staff:
        doors.check(door=doors.TICKET, user=actor, ip=ip, device=device, now=now)

    return _create_ticket(
        actor=actor, category=category, subject=subject, body=body, party=party, channel=channel,
        grade=grade or sla.GRADE_GENERAL, language=language, buyer=buyer, merchant_id=merchant_id, order=order, now=now,
    )


def open_system_ticket(*, order: Order, category: str, subject: str, body: str, now: datetime) -> Ticket:
    """The platform opens a ticket for an order's buyer by itself (a carrier
    exception noticed before the buyer complains). Inside the caller's transaction."""
    assert transaction.get_connection().in_atomic_block, "open_system_ticket needs the caller's transaction"
    return _create_ticket(
        actor=None, category=category, subject=subject[:SUBJECT_MAX], body=body, party=Party.BUYER,
        channel=Channel.API, grade=sla.GRADE_GENERAL, language=getattr(order.buyer, "language", "") or Language.ZH,
        buyer=order.buyer, merchant_id=order.merchant_id, order=order, now=now,
    )


def search_text_for(*, subject: str, order, buyer, body: str) -> str:
    """A new ticket's search text (``tickets.search``): its subject, order no.,
    the buyer's names and phone, then the opening message."""
    return search.extend(
        "", subject, order.order_no if order is not None else "",
        *((buyer.username, buyer.display_name, buyer.phone) if buyer is not None else ()), body,
    )


def _create_ticket(*, actor, category, subject, body, party, channel, grade, language, buyer, merchant_id, order,
                   now) -> Ticket:
    """Intake: the ticket is routed before it is written, so one INSERT stores
    it open in its queue with its first message counted; the two timeline
    entries go in one INSERT, then the message (five statements in all for a
    plain ticket, where each step used to save the row again)."""
    if language not in Language.values:
        language = Language.ZH
    ticket = Ticket(
        subject=subject, category=category, party=party, channel=channel, grade=grade,
        tier=sla.GRADE_TIERS[grade], language=language, buyer=buyer, merchant_id=merchant_id,
        order=order, created_by=actor, created_at=now,
        # the opening message is seq 1
        last_seq=1, last_public_seq=1, last_message_at=now,
        search_text=search_text_for(subject=subject, order=order, buyer=buyer, body=body), searched_seq=1,
    )
    actor_or_none = actor if actor is not None and actor.is_authenticated else None
    # a buyer's request opens a wait for the first reply (the chat report)
    ticket.buyer_waiting_since, _ = buyer_wait(channel=channel, role=author_role_of(actor_or_none), internal=False,
                                               waiting_since=None, now=now)
    if _is_dispute(ticket) and ticket.party == Party.BUYER:
        # the merchant's money is at stake: the merchant sees the ticket and can answer it
        ticket.party = Party.BOTH
    ticket.start_sla(now=now)
    queue = pick_queue(ticket=ticket)
    ticket.route(queue=queue, now=now)  # new → open, on the row before it exists
    insert(ticket)
    insert(
        TicketEvent(ticket=ticket, kind="created", actor=actor_or_none, created_at=now,
                    data={"category": category, "channel": channel, "grade": grade, "party": party,
                          "due_at": ticket.due_at.isoformat()}),
        TicketEvent(ticket=ticket, kind="route", actor=None, created_at=now,
                    data={"from": Ticket.Status.NEW, "to": ticket.status, "queue": queue.code}),
    )
    message = Message(ticket=ticket, seq=1, author=actor_or_none, author_role=author_role_of(actor_or_none), body=body,
                      internal=False, created_at=now)
    insert(message)
    events.message_posted(message, prev_public_seq=0)
    if ticket.channel == Channel.CHAT:
        # before the dispute's money: agent profiles come before orders in the lock order (core/locks.py)
        assign_chat_on_open(ticket=ticket, now=now)
    _open_dispute(ticket=ticket, actor=actor, now=now)
    events.ticket_changed(ticket)
    return ticket


@transaction.atomic(durable=True)
def transition_ticket(
    *, actor, ticket_id: int, name: str, assignee_id: int | None = None, note: str = "",
    confirm_past_shift: bool = False,
) -> Ticket:
    """Run transition ``name`` for ``actor``: 404 unseen, 409 wrong state or
    taken first, 403 not allowed, 422 a failed condition.

    An agent past today's shift (and any overtime granted) who takes a ticket
    by hand is refused with 409 ``shift_limit_reached`` unless the call says
    ``confirm_past_shift``; the timeline then records that it was taken past
    the shift."""
    now = timezone.now()
    # scoped and locked in one query: an unseen ticket is a 404 that reveals nothing
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id, lock=True)
    note = _clean_text(note, field="note", max_chars=1000, required=False)
    # a wrong state is a 409, then a wrong role a 403, before the input is judged
    method = check_source_state(ticket=ticket, name=name)
    check_permission(ticket=ticket, method=method, actor=actor)
    kwargs = {}
    if name in ("assign", "reassign"):
        if assignee_id is None or assignee_id == actor.pk:
            if name == "reassign" and assignee_id is None:
                raise InvalidInput("reassign needs assignee_id.", field="assignee_id")
            assignee = actor
        else:
            if not roles.is_supervisor(actor):
                raise PermissionDenied("Only a supervisor assigns a ticket to someone else.")
            assignee = User.objects.filter(pk=assignee_id, is_active=True).first()
        if assignee is None or not roles.is_agent(assignee):
            raise AssigneeInvalid()
        kwargs["assignee"] = assignee
        if name == "assign" and assignee == actor:
            shift = shift_status(agent=actor, now=now)
            if shift.reached:
                if not confirm_past_shift:
                    raise ShiftLimitReached(worked_s=shift.worked_s, limit_s=shift.limit_s)
                kwargs["event_data"] = {"past_shift": True, "worked_s": shift.worked_s, "limit_s": shift.limit_s}
    elif assignee_id is not None:
        raise InvalidInput(f"{name} takes no assignee_id.", field="assignee_id")
    run_transition(ticket=ticket, name=name, actor=actor, now=now, note=note, **kwargs)
    if name == "resolve":
        _settle_dispute(ticket=ticket, actor=actor, now=now)
    elif name == "reopen":
        _open_dispute(ticket=ticket, actor=actor, now=now)
    if name in ("resolve", "release", "close"):
        from tickets.tasks import dispatch_chats_later

        dispatch_chats_later()
    return ticket


@transaction.atomic(durable=True)
def report_up(*, actor, ticket_id: int, note: str) -> Ticket:
    """上报: escalate the ticket one tier with a note, record it on the
    timeline and tell the next tier's staff on their consoles.

    404 unseen, 409 from a state that cannot escalate, 403 for who may not
    escalate it, 422 ``transition_refused`` at the top of the ladder, 400
    ``note_required`` without a note (the next tier needs to know why)."""
    now = timezone.now()
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id, lock=True)
    method = check_source_state(ticket=ticket, name="escalate")
    check_permission(ticket=ticket, method=method, actor=actor)
    note = _clean_text(note, field="note", max_chars=1000, required=False)
    if not note:
        raise NoteRequired()
    run_transition(ticket=ticket, name="escalate", actor=actor, now=now, note=note,
                   event_data={"reason": "reported_up"})
    events.reported_up(ticket, actor=actor, note=note)
    return ticket


def _is_dispute(ticket: Ticket) -> bool:
    return ticket.category in DISPUTE_CATEGORIES and ticket.order_id is not None and ticket.party != Party.MERCHANT


def _open_dispute(*, ticket: Ticket, actor, now) -> None:
    """A buyer's dispute holds the merchant's money (or keeps it in escrow),
    in the ticket's own transaction. A second dispute on the same order links
    to the open hold, and its timeline says which ticket placed it."""
    if not _is_dispute(ticket):
        return
    if ticket.party == Party.BUYER:  # a reopened buyer-only ticket
        # the merchant's money is at stake: the merchant sees the ticket and can answer it
        ticket.party = Party.BOTH
        ticket.save(update_fields=["party", "updated_at"])
    placed = merchant_services.place_dispute_hold(
        order=ticket.order, ticket_id=ticket.pk, reason=Category(ticket.category).label, now=now
    )
    data = {"order_id": ticket.order_id}
    if placed.hold is None:
        data["escrow"] = "kept_in_escrow"
    else:
        data.update(hold_id=placed.hold.pk, amount_fen=placed.hold.amount_fen)
        if placed.linked:
            data["linked_to_ticket_id"] = placed.hold.ticket_id
    TicketEvent.objects.create(ticket=ticket, kind="dispute_opened", actor=actor, data=data, created_at=now)


def _settle_dispute(*, ticket: Ticket, actor, now, prefer_ticket_id: int | None = None) -> None:
    """The dispute ended: the order's hold is released with the last open
    dispute on the order, and answers to the next one until then (to
    ``prefer_ticket_id`` when that one is still an open dispute on the order:
    a merge hands the hold to its target)."""
    if not _is_dispute(ticket):
        return
    others = (Ticket.objects.filter(order_id=ticket.order_id, category__in=DISPUTE_CATEGORIES, status__in=Ticket.ACTIVE)
              .exclude(party=Party.MERCHANT).exclude(pk=ticket.pk))
    ids = list(others.order_by("created_at", "pk").values_list("pk", flat=True))
    next_ticket_id = prefer_ticket_id if prefer_ticket_id in ids else (ids[0] if ids else None)
    hold = merchant_services.settle_dispute(order_id=ticket.order_id, ticket_id=ticket.pk, now=now, next_ticket_id=next_ticket_id)
    data = {"order_id": ticket.order_id}
    if hold is not None:
        data.update(hold_id=hold.pk, amount_fen=hold.amount_fen, released=True)
    elif next_ticket_id is not None:
        data["hold_kept_for_ticket_id"] = next_ticket_id
    TicketEvent.objects.create(ticket=ticket, kind="dispute_settled", actor=actor, data=data, created_at=now)
