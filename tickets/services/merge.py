"""Duplicates merged (issue #13 item 2): a buyer's second and third ticket
about one parcel end in ``merged`` and their conversation continues in the
first.

Copy, not move: the source's messages are appended to the target's
conversation as copies with the target's next seqs (through
``conversation.append_copies``, under the target's lock), so the target's
seq stays gap-free and its sockets get ordinary message frames; the source
keeps its own conversation untouched, so its seqs, read marks and every
socket's ``after_seq`` stay true and the audit trail of what was said where
survives (messages are never rewritten elsewhere either). Moving the rows
and renumbering would leave holes in the source's seq and break replay for
a socket still open on it.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from accounts import roles
from core.locks import lock
from tickets import events, rules
from tickets.errors import MergeBuyerMismatch, MergeIntoSelf, MergeTargetClosed, PermissionDenied, TicketNotFound
from tickets.models import Message, Ticket, TicketEvent
from tickets.selectors import tickets_visible_to
from tickets.services.conversation import append_copies, append_notice
from tickets.services.tickets import _settle_dispute
from tickets.services.transitions import check_source_state, run_transition

REFUSALS = {"merge_into_self": MergeIntoSelf, "merge_target_closed": MergeTargetClosed,
            "merge_buyer_mismatch": MergeBuyerMismatch}


@transaction.atomic(durable=True)
def merge_tickets(*, actor, ticket_id: int, into_ticket_id: int) -> Ticket:
    """Merge ticket ``ticket_id`` into ``into_ticket_id`` (staff): the source
    ends ``merged`` pointing at the target, its messages follow in the
    target's conversation, both timelines record it, the order's dispute hold
    stays one and answers to the target. 403 for non-staff, 404 for a ticket
    the actor may not see, 409 ``merge_into_self``, ``merge_target_closed``,
    ``merge_buyer_mismatch``, or ``illegal_transition`` for a source that is
    not open. Both tickets are locked in id order (``core.locks``), so two
    merges in opposite directions queue up instead of deadlocking: the second
    finds one of them merged and gets a 409. Returns the source."""
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff merge tickets.")
    now = timezone.now()
    ids = sorted({ticket_id, into_ticket_id})
    locked = {t.pk: t for t in lock(tickets_visible_to(user=actor), "ticket").filter(pk__in=ids).order_by("pk")}
    if len(locked) != len(ids):
        raise TicketNotFound()
    source, target = locked[ticket_id], locked[into_ticket_id]
    refusal = rules.merge_refusal(source_id=source.pk, target_id=target.pk, source_buyer_id=source.buyer_id,
                                  target_buyer_id=target.buyer_id, target_status=target.status)
    if refusal:
        raise REFUSALS[refusal](source_id=source.pk, target_id=target.pk)
    check_source_state(ticket=source, name="merge", system=True)  # 409 illegal_transition from a closed source

    originals = list(Message.objects.filter(ticket=source).select_related("author").order_by("seq"))
    notice = append_notice(ticket=target, notice="merged_in", now=now, source=str(source.pk))
    copies = append_copies(ticket=target, messages=originals, now=now)
    # the buyer reading the source is told where it went (the last message it gets)
    append_notice(ticket=source, notice="merged_away", now=now, target=str(target.pk))
    seq_range = {"seq_from": notice.seq, "seq_to": copies[-1].seq if copies else notice.seq}
    run_transition(ticket=source, name="merge", actor=actor, now=now, system=True, into=target,
                   event_data={"into_ticket_id": target.pk, "messages": len(originals), **seq_range})
    TicketEvent.objects.create(
        ticket=target, kind="merged_in", actor=actor, created_at=now,
        data={"from_ticket_id": source.pk, "messages": len(originals), **seq_range},
    )
    # one hold per order: the source's dispute ends and its hold answers to the target
    _settle_dispute(ticket=source, actor=actor, now=now, prefer_ticket_id=target.pk)
    events.ticket_merged(source, target)
    events.ticket_changed(target)
    return source
