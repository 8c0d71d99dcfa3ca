"""The SLA sweep: find breached deadlines, escalate one tier, record, alert.

The ladder of the emergency plan: a breach escalates one tier and gives the
new tier its own fresh deadline, so an untouched ticket climbs agent → team
lead → head → all levels; at the top every further breach alerts the
supervisors again and starts another period, until the ticket is resolved,
closed or waits on the buyer.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from merchants import services as merchant_services
from tickets import events, sla
from tickets.locks import lock_ticket
from tickets.models import SlaBreach, Ticket, TicketEvent
from tickets.services.transitions import run_transition

SWEEP_BATCH = 500


def sweep_sla(*, now: datetime | None = None, batch: int = SWEEP_BATCH) -> list[SlaBreach]:
    """Idempotent: a deadline is breached once (each breach moves ``due_at``
    on, and ``(ticket, due_at)`` is unique), so running it again, or twice at
    once, records and escalates nothing more. Each ticket is its own transaction."""
    now = now or timezone.now()
    due = list(
        Ticket.objects.filter(status__in=Ticket.ACTIVE, due_at__lt=now)
        .order_by("due_at")
        .values_list("pk", flat=True)[:batch]
    )
    breaches = []
    for ticket_id in due:
        breach = _breach_one(ticket_id=ticket_id, now=now)
        if breach is not None:
            breaches.append(breach)
    return breaches


@transaction.atomic(durable=True)
def _breach_one(*, ticket_id: int, now: datetime) -> SlaBreach | None:
    ticket = lock_ticket(ticket_id)
    # re-check on the locked row: another sweep or a resolve may have won
    if ticket is None or not ticket.is_overdue(now):
        return None
    due_at = ticket.due_at
    tier_before = ticket.tier
    if ticket.tier < sla.MAX_TIER:
        # the next tier, with a fresh deadline of its own (Ticket.escalate)
        run_transition(
            ticket=ticket, name="escalate", actor=None, now=now, system=True,
            event_data={"reason": "sla_breach", "due_at": due_at.isoformat()},
        )
    else:
        # the top of the ladder: another period, and another alert when it passes
        ticket.restart_sla(now=now)
    if ticket.breached_at is None:  # the first breach, kept for the reports
        ticket.breached_at = now
    ticket.save(update_fields=["breached_at", "due_at", "sla_remaining_s", "updated_at"])
    breach = SlaBreach.objects.create(
        ticket=ticket, due_at=due_at, grade=ticket.grade, tier_before=tier_before, tier_after=ticket.tier,
        detected_at=now,
    )
    TicketEvent.objects.create(
        ticket=ticket, kind="sla_breached", actor=None, created_at=now,
        data={"due_at": due_at.isoformat(), "grade": ticket.grade, "tier_before": tier_before,
              "tier_after": ticket.tier, "late_s": int((now - due_at).total_seconds())},
    )
    events.sla_breached(breach, ticket)
    return breach


def sweep_missed_resends(*, now: datetime | None = None) -> list[int]:
    """Mark compelled resends past their deadline missed (their merchants'
    credit is recomputed) and escalate each one's ticket one tier."""
    now = now or timezone.now()
    escalated = []
    for task in merchant_services.mark_missed_resends(now=now):
        with transaction.atomic(durable=True):
            ticket = lock_ticket(task.ticket_id)
            if ticket is None:
                continue
            data = {"task_id": task.pk, "order_id": task.order_id, "deadline_at": task.deadline_at.isoformat()}
            TicketEvent.objects.create(ticket=ticket, kind="resend_missed", actor=None, data=data, created_at=now)
            if ticket.is_active and ticket.tier < sla.MAX_TIER:
                run_transition(ticket=ticket, name="escalate", actor=None, now=now, system=True,
                               event_data={"reason": "resend_missed", **data})
                escalated.append(ticket.pk)
    return escalated
