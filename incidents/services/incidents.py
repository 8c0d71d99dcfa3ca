"""Incidents: open one by hand, link tickets to it (by a query or by hand), close
it with the aftermath review.

The helpers without a leading ``_`` are shared with the package's other
modules (the carrier-event rules raise incidents and link tickets, bulk jobs
act on an open incident's tickets); they run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import roles
from core.locks import lock
from core.realtime import publish_on_commit
from incidents.errors import IncidentClosed, IncidentNotFound, InvalidInput, PermissionDenied, ReviewIncomplete
from incidents.models import Incident, IncidentEvent, IncidentTicket
from tickets import sla
from incidents import rules
from tickets.events import CONSOLE, tier_group
from tickets.models import Category, Ticket


def require_supervisor(actor) -> None:
    """Incidents and bulk jobs are supervisors' work."""
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only supervisors run incidents.")


def clean_text(value, *, field: str, max_chars: int, required: bool = True) -> str:
    """A text input, stripped, within ``max_chars`` (and not empty when required)."""
    value = (value or "").strip() if isinstance(value, str) or value is None else None
    if value is None:
        raise InvalidInput(f"{field} is text.", field=field)
    if required and not value:
        raise InvalidInput(f"{field} is required.", field=field)
    if len(value) > max_chars:
        raise InvalidInput(f"{field} is at most {max_chars} characters.", field=field)
    return value


def _announce(incident: Incident) -> None:
    publish_on_commit([CONSOLE], {"type": "incident", "incident_id": incident.pk, "status": incident.status,
                                  "grade": incident.grade, "title": incident.title})


def create_incident(*, title: str, grade: str, actor, now: datetime, rule: str = "", region: str = "",
                    carrier: str = "", category: str = "", description: str = "") -> Incident:
    """The incident, its first timeline event and the console's notice, inside the caller's transaction
    (``open_incident`` by hand, the carrier-event rules by themselves)."""
    incident = Incident.objects.create(
        title=title, grade=grade, owner_tier=sla.GRADE_TIERS[grade], rule=rule, region=region, carrier=carrier,
        category=category, description=description, opened_by=actor, opened_at=now,
        due_at=now + sla.GRADE_DEADLINES[grade],
    )
    IncidentEvent.objects.create(incident=incident, kind="opened", actor=actor, created_at=now,
                                 data={"grade": grade, "rule": rule, "region": region, "carrier": carrier})
    _announce(incident)
    return incident


@transaction.atomic(durable=True)
def open_incident(*, actor, title: str, grade: str, region: str = "", carrier: str = "", category: str = "",
                  description: str = "") -> Incident:
    """A supervisor opens a graded incident; its deadline and owning tier come from the grade."""
    require_supervisor(actor)
    if grade not in sla.GRADE_DEADLINES:
        raise InvalidInput(f"Unknown grade {grade!r}.", field="grade")
    if category and category not in Category.values:
        raise InvalidInput(f"Unknown category {category!r}.", field="category")
    return create_incident(
        title=clean_text(title, field="title", max_chars=160), grade=grade, actor=actor, now=timezone.now(),
        region=clean_text(region, field="region", max_chars=32, required=False),
        carrier=clean_text(carrier, field="carrier", max_chars=32, required=False), category=category,
        description=clean_text(description, field="description", max_chars=4000, required=False),
    )


def lock_open_incident(incident_id: int) -> Incident:
    """The incident, locked, while it is open (inside the caller's transaction)."""
    incident = lock(Incident.objects, "incident").filter(pk=incident_id).first()
    if incident is None:
        raise IncidentNotFound()
    if incident.status != Incident.Status.OPEN:
        raise IncidentClosed()
    return incident


def add_links(incident: Incident, ticket_ids: list[int], *, actor, now: datetime) -> int:
    """Link the tickets not linked yet; returns how many were new (inside the caller's transaction)."""
    existing = set(IncidentTicket.objects.filter(incident=incident, ticket_id__in=ticket_ids)
                   .values_list("ticket_id", flat=True))
    new = [IncidentTicket(incident=incident, ticket_id=t, added_by=actor, added_at=now)
           for t in dict.fromkeys(ticket_ids) if t not in existing]
    IncidentTicket.objects.bulk_create(new, ignore_conflicts=True)
    if new:
        IncidentEvent.objects.create(incident=incident, kind="tickets_linked", actor=actor, created_at=now,
                                     data={"count": len(new)})
    return len(new)


@dataclass(frozen=True)
class TicketQuery:
    """Which tickets belong to an incident: all given parts must match."""

    category: str = ""
    region: str = ""
    carrier: str = ""
    since: datetime | None = None
    until: datetime | None = None
    active_only: bool = True

    @classmethod
    def parse(cls, data: dict[str, Any]) -> TicketQuery:
        category = (data.get("category") or "").strip()
        if category and category not in Category.values:
            raise InvalidInput(f"Unknown category {category!r}.", field="category")
        times = {}
        for name in ("since", "until"):
            raw = (data.get(name) or "").strip()
            if raw:
                moment = parse_datetime(raw)
                if moment is None:
                    raise InvalidInput(f"{name} is an ISO 8601 date-time.", field=name)
                times[name] = moment if timezone.is_aware(moment) else timezone.make_aware(moment)
        query = cls(category=category, region=(data.get("region") or "").strip()[:32],
                    carrier=(data.get("carrier") or "").strip()[:32], **times,
                    active_only=str(data.get("active_only", "1")).lower() not in ("0", "false", "no", ""))
        if not (query.category or query.region or query.carrier or query.since or query.until):
            raise InvalidInput("Name at least one of category, region, carrier or a time window.")
        return query

    def tickets(self):
        found = Ticket.objects.all()
        if self.category:
            found = found.filter(category=self.category)
        if self.region:
            found = found.filter(order__region=self.region)
        if self.carrier:
            found = found.filter(order__shipment__carrier=self.carrier)
        if self.since:
            found = found.filter(created_at__gte=self.since)
        if self.until:
            found = found.filter(created_at__lt=self.until)
        if self.active_only:
            found = found.filter(status__in=Ticket.ACTIVE)
        return found


@transaction.atomic(durable=True)
def link_tickets(*, actor, incident_id: int, query: TicketQuery | None = None, ticket_ids: list[int] | None = None) -> int:
    """Link tickets to an open incident by a query or by hand; returns how many were new."""
    require_supervisor(actor)
    incident = lock_open_incident(incident_id)
    if query is None and not ticket_ids:
        raise InvalidInput("Give a query or ticket ids.")
    ids: list[int] = []
    if ticket_ids:
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in ticket_ids):
            raise InvalidInput("ticket_ids are integers.", field="ticket_ids")
        ids += list(Ticket.objects.filter(pk__in=ticket_ids).values_list("pk", flat=True))
        if len(set(ids)) != len(set(ticket_ids)):
            raise InvalidInput("Some ticket ids do not exist.", field="ticket_ids")
    if query is not None:
        ids += list(query.tickets().values_list("pk", flat=True)[:20000])
    return add_links(incident, ids, actor=actor, now=timezone.now())


@transaction.atomic(durable=True)
def close_incident(*, actor, incident_id: int, cause: str, actions_taken: str, prevention: str) -> Incident:
    """Close with the aftermath review; the timeline is the incident's own events."""
    require_supervisor(actor)
    incident = lock_open_incident(incident_id)
    review = {}
    for field, value in (("cause", cause), ("actions_taken", actions_taken), ("prevention", prevention)):
        try:
            review[field] = clean_text(value, field=field, max_chars=4000)
        except InvalidInput:
            raise ReviewIncomplete(field=field) from None
    now = timezone.now()
    for field, value in review.items():
        setattr(incident, field, value)
    incident.status = Incident.Status.CLOSED
    incident.closed_by = actor
    incident.closed_at = now
    incident.save()
    IncidentEvent.objects.create(incident=incident, kind="closed", actor=actor, created_at=now,
                                 data={"tickets": incident.links.count()})
    _announce(incident)
    return incident


INCIDENT_SWEEP_BATCH = 200


def sweep_incident_deadlines(*, now: datetime | None = None, batch: int = INCIDENT_SWEEP_BATCH) -> list[int]:
    """The periodic check of incident deadlines: an open incident past its
    deadline goes one tier up (its owner: agent → team lead → head → all
    levels) with a fresh deadline of its grade, the consoles are alerted (the
    new tier's owners by name) and the timeline records it. Once per deadline
    period: the deadline moves on with each escalation, so running it again,
    or twice at once, changes nothing more. Each incident is its own
    transaction; returns the ids escalated."""
    now = now or timezone.now()
    due = list(Incident.objects.filter(status=Incident.Status.OPEN, due_at__lt=now)
               .order_by("due_at", "pk").values_list("pk", flat=True)[:batch])
    return [pk for pk in due if _escalate_overdue(incident_id=pk, now=now)]


@transaction.atomic(durable=True)
def _escalate_overdue(*, incident_id: int, now: datetime) -> bool:
    incident = lock(Incident.objects, "incident").filter(pk=incident_id).first()
    # re-checked on the locked row: a close or a parallel sweep may have won
    if incident is None or not rules.deadline_passed(status=incident.status, due_at=incident.due_at, now=now):
        return False
    due_at, tier_before = incident.due_at, incident.owner_tier
    incident.owner_tier = rules.next_owner_tier(tier_before)
    incident.due_at = now + sla.GRADE_DEADLINES[incident.grade]
    incident.breaches += 1
    incident.breached_at = now
    incident.save(update_fields=["owner_tier", "due_at", "breaches", "breached_at"])
    IncidentEvent.objects.create(incident=incident, kind="deadline_passed", actor=None, created_at=now, data={
        "due_at": due_at.isoformat(), "tier_before": tier_before, "tier_after": incident.owner_tier,
        "late_s": int((now - due_at).total_seconds()), "breaches": incident.breaches,
        "next_due_at": incident.due_at.isoformat(),
    })
    publish_on_commit([CONSOLE, tier_group(incident.owner_tier)], {
        "type": "incident.overdue", "incident_id": incident.pk, "title": incident.title, "grade": incident.grade,
        "tier_before": tier_before, "tier_after": incident.owner_tier, "due_at": due_at.isoformat(),
        "next_due_at": incident.due_at.isoformat(),
    })
    return True


__all__ = ["TicketQuery", "close_incident", "link_tickets", "open_incident", "sweep_incident_deadlines"]
