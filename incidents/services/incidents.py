"""Incidents, carrier events and bulk jobs: every write, one function per use case.

Public functions own their transaction; bulk jobs call other apps' services
(each its own durable transaction) one item at a time and make every item
idempotent by the key they hand down, so a job re-run after a crash does
nothing twice.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, override

from accounts import roles
from compensation import services as compensation
from compensation.models import Remedy
from core.errors import DomainError, IdempotencyConflict
from core.idempotency import request_hash, require_idempotency_key
from core.money import format_fen
from core.realtime import publish_on_commit, send_now
from core.locks import lock
from incidents.errors import (
    IncidentClosed,
    IncidentNotFound,
    InvalidInput,
    JobNotFound,
    JobState,
    PermissionDenied,
    ReviewIncomplete,
    UndoExpired,
    UnknownShipment,
)
from incidents.models import BulkJob, BulkJobItem, Incident, IncidentEvent, IncidentTicket, LogisticsEvent
from merchants import rules as merchant_rules
from merchants import services as merchants
from merchants.models import Order, Shipment
from tickets import services as tickets
from tickets import sla
from tickets.events import CONSOLE
from tickets.models import Category, Ticket, TicketEvent
from tickets.services.conversation import append_notice
from tickets.services.knowledge import render_quick_reply

logger = logging.getLogger(__name__)

# --- incidents ------------------------------------------------------------------


def _require_supervisor(actor) -> None:
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only supervisors run incidents.")


def _text(value, *, field: str, max_chars: int, required: bool = True) -> str:
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


def _create_incident(*, title: str, grade: str, actor, now: datetime, rule: str = "", region: str = "",
                     carrier: str = "", category: str = "", description: str = "") -> Incident:
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
    _require_supervisor(actor)
    if grade not in sla.GRADE_DEADLINES:
        raise InvalidInput(f"Unknown grade {grade!r}.", field="grade")
    if category and category not in Category.values:
        raise InvalidInput(f"Unknown category {category!r}.", field="category")
    return _create_incident(
        title=_text(title, field="title", max_chars=160), grade=grade, actor=actor, now=timezone.now(),
        region=_text(region, field="region", max_chars=32, required=False),
        carrier=_text(carrier, field="carrier", max_chars=32, required=False), category=category,
        description=_text(description, field="description", max_chars=4000, required=False),
    )


def _open_incident_for_update(incident_id: int) -> Incident:
    incident = lock(Incident.objects, "incident").filter(pk=incident_id).first()
    if incident is None:
        raise IncidentNotFound()
    if incident.status != Incident.Status.OPEN:
        raise IncidentClosed()
    return incident


def _link(incident: Incident, ticket_ids: list[int], *, actor, now: datetime) -> int:
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
    _require_supervisor(actor)
    incident = _open_incident_for_update(incident_id)
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
    return _link(incident, ids, actor=actor, now=timezone.now())


@transaction.atomic(durable=True)
def close_incident(*, actor, incident_id: int, cause: str, actions_taken: str, prevention: str) -> Incident:
    """Close with the aftermath review; the timeline is the incident's own events."""
    _require_supervisor(actor)
    incident = _open_incident_for_update(incident_id)
    review = {}
    for field, value in (("cause", cause), ("actions_taken", actions_taken), ("prevention", prevention)):
        try:
            review[field] = _text(value, field=field, max_chars=4000)
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


# --- carrier events ---------------------------------------------------------------

# what an exception means for the buyer's ticket
EXCEPTION_CATEGORY = {
    LogisticsEvent.Kind.LOST: Category.NOT_RECEIVED,
    LogisticsEvent.Kind.DAMAGED: Category.PARCEL_DAMAGED,
    LogisticsEvent.Kind.STUCK: Category.LOGISTICS_DELAY,
    LogisticsEvent.Kind.BACKLOG: Category.LOGISTICS_DELAY,
    LogisticsEvent.Kind.RETURNED: Category.LOGISTICS_DELAY,
}
LOGISTICS_CATEGORIES = (Category.NOT_RECEIVED, Category.PARCEL_DAMAGED, Category.LOGISTICS_DELAY)
SHIPMENT_STATUS = {
    LogisticsEvent.Kind.PICKED_UP: Shipment.Status.IN_TRANSIT,
    LogisticsEvent.Kind.IN_TRANSIT: Shipment.Status.IN_TRANSIT,
    LogisticsEvent.Kind.OUT_FOR_DELIVERY: Shipment.Status.OUT_FOR_DELIVERY,
    LogisticsEvent.Kind.DELIVERED: Shipment.Status.DELIVERED,
    LogisticsEvent.Kind.RETURNED: Shipment.Status.RETURNED,
}
# the emergency plan's grade-2 thresholds: "more than" this many parcels in a region within the window
RULE_KINDS = {"backlog": LogisticsEvent.Kind.BACKLOG, "lost": LogisticsEvent.Kind.LOST,
              "stuck": LogisticsEvent.Kind.STUCK}


@dataclass(frozen=True)
class IngestResult:
    event: LogisticsEvent
    created: bool
    ticket_id: int | None
    incident_id: int | None


def _clean_event(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise InvalidInput("An event is a JSON object.")
    clean: dict[str, Any] = {}
    for field, limit in (("event_id", 64), ("tracking_no", 64), ("carrier", 32)):
        value = payload.get(field)
        if not isinstance(value, str) or not value.strip() or len(value.strip()) > limit:
            raise InvalidInput(f"{field} is 1–{limit} characters.", field=field)
        clean[field] = value.strip()
    kind = payload.get("kind")
    if kind not in LogisticsEvent.Kind.values:
        raise InvalidInput(f"kind is one of {', '.join(LogisticsEvent.Kind.values)}.", field="kind")
    clean["kind"] = kind
    occurred = parse_datetime(payload.get("occurred_at") or "") if isinstance(payload.get("occurred_at"), str) else None
    if occurred is None or not timezone.is_aware(occurred):
        raise InvalidInput("occurred_at is an ISO 8601 date-time with its offset.", field="occurred_at")
    clean["occurred_at"] = occurred
    location = payload.get("location", "")
    if location is None:
        location = ""
    if not isinstance(location, str) or len(location) > 64:
        raise InvalidInput("location is at most 64 characters.", field="location")
    clean["location"] = location.strip()
    return clean


def ingest_logistics_event(*, actor, payload: Any) -> IngestResult:
    """Store a carrier event once per ``event_id``. An exception (lost, damaged,
    stuck, backlog, returned) opens a ticket for the buyer (or updates the one
    already open on the order), tells the buyer in its conversation, and counts
    toward the incident rules. A repeat returns the first result; a bad or
    unknown event changes nothing."""
    if not (roles.is_integration(actor) or roles.is_agent(actor)):
        raise PermissionDenied("Only the carrier feed, the order system or staff post carrier events.")
    clean = _clean_event(payload)
    existing = LogisticsEvent.objects.filter(event_id=clean["event_id"]).first()
    if existing is not None:
        return IngestResult(existing, False, existing.ticket_id, None)
    try:
        return _ingest(clean)
    except IntegrityError:  # the same event id committed by a parallel request first
        existing = LogisticsEvent.objects.filter(event_id=clean["event_id"]).first()
        if existing is None:
            raise
        return IngestResult(existing, False, existing.ticket_id, None)


@transaction.atomic(durable=True)
def _ingest(clean: dict[str, Any]) -> IngestResult:
    now = timezone.now()
    shipment = (lock(Shipment.objects, "shipment", of=("self",)).select_related("order", "order__buyer")
                .filter(carrier=clean["carrier"], tracking_no=clean["tracking_no"]).first())
    if shipment is None:
        raise UnknownShipment()
    order = shipment.order
    event = LogisticsEvent.objects.create(
        event_id=clean["event_id"], shipment=shipment, order=order, carrier=clean["carrier"],
        tracking_no=clean["tracking_no"], kind=clean["kind"], occurred_at=clean["occurred_at"],
        location=clean["location"], region=order.region, received_at=now,
    )
    status = SHIPMENT_STATUS.get(clean["kind"], Shipment.Status.EXCEPTION)
    if shipment.status != status:
        shipment.status = status
        shipment.save(update_fields=["status", "updated_at"])
    if clean["kind"] not in LogisticsEvent.EXCEPTIONS:
        return IngestResult(event, True, None, None)

    ticket = _ticket_for_exception(order=order, event=event, now=now)
    event.ticket = ticket
    event.save(update_fields=["ticket"])
    incident = _apply_rules(region=order.region, kind=clean["kind"], now=now)
    if incident is not None:
        _link(incident, [ticket.pk], actor=None, now=now)
    return IngestResult(event, True, ticket.pk, incident.pk if incident else None)


def _ticket_for_exception(*, order: Order, event: LogisticsEvent, now: datetime) -> Ticket:
    with override(order.buyer.language or "zh-hans"):
        what = str(LogisticsEvent.Kind(event.kind).label)
        subject = gettext("Parcel %(tracking_no)s: %(what)s") % {"tracking_no": event.tracking_no, "what": what}
    ticket = (lock(Ticket.objects, "ticket").filter(order=order, status__in=Ticket.ACTIVE,
                                                         category__in=LOGISTICS_CATEGORIES)
              .order_by("created_at").first())
    if ticket is None:
        ticket = tickets.open_system_ticket(
            order=order, category=EXCEPTION_CATEGORY[event.kind], subject=subject, now=now,
            body=f"{event.carrier} {event.tracking_no}: {event.kind} {event.location}".strip(),
        )
    with override(ticket.language):
        what = str(LogisticsEvent.Kind(event.kind).label)
    append_notice(ticket=ticket, notice="logistics_exception", now=now, tracking_no=event.tracking_no, what=what)
    TicketEvent.objects.create(ticket=ticket, kind="carrier_exception", actor=None, created_at=now,
                               data={"event_id": event.event_id, "kind": event.kind, "location": event.location})
    return ticket


def _apply_rules(*, region: str, kind: str, now: datetime) -> Incident | None:
    """Raise (once) the grade-2 incident for this region and rule when its count passes the threshold."""
    rule = next((name for name, rule_kind in RULE_KINDS.items() if rule_kind == kind), None)
    if rule is None or not region:
        return None
    open_incident = Incident.objects.filter(status=Incident.Status.OPEN, rule=rule, region=region).first()
    if open_incident is not None:
        return open_incident
    window = now - timedelta(hours=settings.INCIDENT_RULE_WINDOW_HOURS)
    parcels = (LogisticsEvent.objects.filter(region=region, kind=kind, occurred_at__gte=window)
               .values("shipment_id").distinct().count())
    if parcels <= settings.INCIDENT_RULE_THRESHOLDS[rule]:
        return None
    with override(settings.LANGUAGE_CODE):  # stored text, in the console's language
        title = f"{Incident.Rule(rule).label} · {region}"
        description = gettext(
            "%(parcels)s parcels in %(region)s within %(hours)s h (the rule: more than %(limit)s)."
        ) % {"parcels": parcels, "region": region, "hours": settings.INCIDENT_RULE_WINDOW_HOURS,
             "limit": settings.INCIDENT_RULE_THRESHOLDS[rule]}
    try:
        with transaction.atomic():
            incident = _create_incident(
                title=title, grade=sla.GRADE_SERIOUS, actor=None, now=now, rule=rule,
                region=region, category=EXCEPTION_CATEGORY[kind], description=description,
            )
    except IntegrityError:  # a parallel event raised it first
        return Incident.objects.filter(status=Incident.Status.OPEN, rule=rule, region=region).first()
    # the tickets of the parcels that made it fire belong to it
    ids = list(LogisticsEvent.objects.filter(region=region, kind=kind, occurred_at__gte=window, ticket__isnull=False)
               .values_list("ticket_id", flat=True))
    _link(incident, ids, actor=None, now=now)
    return incident


@transaction.atomic(durable=True)
def sweep_incident_rules(*, now: datetime | None = None) -> list[int]:
    """The periodic pass over every region with exceptions in the window (events
    also apply the rules as they arrive). Returns ids of incidents raised."""
    now = now or timezone.now()
    window = now - timedelta(hours=settings.INCIDENT_RULE_WINDOW_HOURS)
    raised = []
    pairs = (LogisticsEvent.objects.filter(occurred_at__gte=window, kind__in=RULE_KINDS.values())
             .exclude(region="").order_by().values_list("region", "kind").distinct())
    for region, kind in sorted(set(pairs)):
        incident = _apply_rules(region=region, kind=kind, now=now)
        if incident is not None and incident.opened_at == now and incident.pk not in raised:
            raised.append(incident.pk)
    return raised


# --- bulk jobs ----------------------------------------------------------------------

JOB_TARGET_LIMIT = 20000
TICKET_JOBS = (BulkJob.Kind.MACRO_REPLY, BulkJob.Kind.REMEDY)


def _clean_params(kind: str, params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise InvalidInput("params is an object.", field="params")
    if kind == BulkJob.Kind.MACRO_REPLY:
        return {"body": _text(params.get("body"), field="body", max_chars=settings.BODY_MAX_CHARS)}
    if kind == BulkJob.Kind.REMEDY:
        remedy_kind = params.get("remedy")
        if remedy_kind not in Remedy.Kind.values:
            raise InvalidInput(f"remedy is one of {', '.join(Remedy.Kind.values)}.", field="remedy")
        amount = params.get("amount_fen")
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
            raise InvalidInput("amount_fen is a positive integer.", field="amount_fen")
        return {"remedy": remedy_kind, "amount_fen": amount, "with_coupon": bool(params.get("with_coupon")),
                "reason": _text(params.get("reason"), field="reason", max_chars=255)}
    return {"reason": _text(params.get("reason"), field="reason", max_chars=255)}


def _targets(*, kind: str, incident: Incident | None, ticket_ids: list[int] | None, user_ids: list[int] | None) -> list[int]:
    if kind in TICKET_JOBS:
        if incident is not None:
            return list(incident.links.filter(ticket__status__in=Ticket.ACTIVE).order_by("ticket_id")
                        .values_list("ticket_id", flat=True)[:JOB_TARGET_LIMIT])
        return list(Ticket.objects.filter(pk__in=ticket_ids or []).order_by("pk").values_list("pk", flat=True))
    # cancels act on orders still waiting to ship: an incident's orders, or a risk list's accounts'
    orders = Order.objects.filter(status=Order.Status.PAID)
    if incident is not None:
        orders = orders.filter(tickets__incident_links__incident=incident)
    else:
        orders = orders.filter(buyer_id__in=user_ids or [])
    return list(orders.order_by("pk").values_list("pk", flat=True).distinct()[:JOB_TARGET_LIMIT])


@transaction.atomic(durable=True)
def create_bulk_job(*, actor, kind: str, params: Any, incident_id: int | None = None,
                    ticket_ids: list[int] | None = None, user_ids: list[int] | None = None,
                    idempotency_key: str | None = None) -> BulkJob:
    """A job and its items, fixed now (what the preview shows is what runs); nothing is changed yet.

    A bulk remedy moves money once run, so creating one needs an
    ``Idempotency-Key``: a client's retry then gets the same job back (the same
    key with another body is a 409) instead of a second job that would pay
    every buyer again. Other kinds honour a key when one is given."""
    _require_supervisor(actor)
    if kind not in BulkJob.Kind.values:
        raise InvalidInput(f"kind is one of {', '.join(BulkJob.Kind.values)}.", field="kind")
    clean = _clean_params(kind, params)
    key = require_idempotency_key(idempotency_key) if kind == BulkJob.Kind.REMEDY else (idempotency_key or "").strip()
    digest = ""
    if key:
        require_idempotency_key(key)  # the length check
        digest = request_hash({"kind": kind, "params": clean, "incident_id": incident_id,
                                "ticket_ids": ticket_ids, "user_ids": user_ids})
        existing = BulkJob.objects.filter(created_by=actor, idempotency_key=key).first()
        if existing is not None:
            if existing.request_hash != digest:
                raise IdempotencyConflict()
            return existing
    incident = None
    if incident_id is not None:
        incident = _open_incident_for_update(incident_id)
    elif not (ticket_ids or user_ids):
        raise InvalidInput("Name an incident, tickets or accounts.")
    for name, ids in (("ticket_ids", ticket_ids), ("user_ids", user_ids)):
        if ids is not None and not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise InvalidInput(f"{name} are integers.", field=name)
    targets = _targets(kind=kind, incident=incident, ticket_ids=ticket_ids, user_ids=user_ids)
    if not targets:
        raise InvalidInput("Nothing to act on: no matching open tickets or pending orders.")
    now = timezone.now()
    try:
        with transaction.atomic():  # a request racing with the same key: one job
            job = BulkJob.objects.create(kind=kind, incident=incident, params=clean, total=len(targets),
                                         created_by=actor, created_at=now, idempotency_key=key, request_hash=digest)
    except IntegrityError:
        existing = BulkJob.objects.filter(created_by=actor, idempotency_key=key).first() if key else None
        if existing is None:
            raise
        if existing.request_hash != digest:
            raise IdempotencyConflict() from None
        return existing
    BulkJobItem.objects.bulk_create([BulkJobItem(job=job, target_id=t) for t in targets], batch_size=2000)
    if incident is not None:
        IncidentEvent.objects.create(incident=incident, kind="job_created", actor=actor, created_at=now,
                                     data={"job_id": job.pk, "kind": kind, "items": len(targets)})
    return job


def get_job(*, actor, job_id: int) -> BulkJob:
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only supervisors see bulk jobs.")
    job = BulkJob.objects.select_related("incident", "created_by").filter(pk=job_id).first()
    if job is None:
        raise JobNotFound()
    return job


@dataclass(frozen=True)
class PreviewRow:
    target_id: int
    label: str
    change: str
    ok: bool


def preview_job(*, actor, job_id: int, limit: int = 50) -> tuple[BulkJob, list[PreviewRow], dict[str, int]]:
    """The dry run: what each item would do, without writing anything.
    Returns the first ``limit`` rows and counts over all items."""
    job = get_job(actor=actor, job_id=job_id)
    ids = list(job.items.order_by("id").values_list("target_id", flat=True))
    rows: list[PreviewRow] = []
    counts = {"ok": 0, "refused": 0}
    chunk = 500
    for start in range(0, len(ids), chunk):
        for row in _preview_chunk(job, ids[start:start + chunk], actor=actor):
            counts["ok" if row.ok else "refused"] += 1
            if len(rows) < limit:
                rows.append(row)
    return job, rows, counts


def _preview_chunk(job: BulkJob, ids: list[int], *, actor) -> list[PreviewRow]:
    if job.kind == BulkJob.Kind.CANCEL:
        orders = Order.objects.filter(pk__in=ids).in_bulk()
        return [PreviewRow(i, orders[i].order_no if i in orders else f"#{i}",
                           gettext("cancel, %(amount)s back to the buyer") % {"amount": format_fen(orders[i].amount_fen)}
                           if i in orders and orders[i].status == Order.Status.PAID else gettext("not cancellable now"),
                           i in orders and orders[i].status == Order.Status.PAID) for i in ids]
    found = Ticket.objects.select_related("buyer", "merchant", "order", "order__shipment", "assignee").in_bulk(ids)
    refusals = {}
    if job.kind == BulkJob.Kind.REMEDY:
        refusals = compensation.refusals_for(tickets=[t for t in found.values() if t.is_active],
                                             kind=job.params["remedy"], amount_fen=job.params.get("amount_fen"))
    rows = []
    for i in ids:
        ticket = found.get(i)
        if ticket is None or not ticket.is_active:
            rows.append(PreviewRow(i, f"#{i}", gettext("no longer open: skipped"), False))
            continue
        label = f"#{ticket.pk} {ticket.subject}"
        if job.kind == BulkJob.Kind.MACRO_REPLY:
            text, missing = _render_macro(job, ticket, actor)
            rows.append(PreviewRow(i, label, text if not missing else gettext("unfilled: %(names)s") % {
                "names": ", ".join(missing)}, not missing))
        else:
            refusal = refusals.get(ticket.pk)
            rows.append(PreviewRow(i, label, str(refusal.detail) if refusal else _remedy_label(job.params), refusal is None))
    return rows


def _render_macro(job: BulkJob, ticket: Ticket, agent) -> tuple[str, list[str]]:
    from tickets.models import QuickReply

    return render_quick_reply(reply=QuickReply(body=job.params["body"]), ticket=ticket, agent=agent)


def _remedy_label(params: dict) -> str:
    label = str(Remedy.Kind(params["remedy"]).label)
    if params.get("amount_fen"):
        label += f" {format_fen(params['amount_fen'])}"
    elif params["remedy"] == Remedy.Kind.COUPON:
        label += f" {format_fen(compensation.get_policy().coupon_fen)}"
    if params.get("with_coupon"):
        label += f" + {format_fen(compensation.get_policy().coupon_fen)}"
    return label


@transaction.atomic(durable=True)
def start_job(*, actor, job_id: int) -> BulkJob:
    """Queue a previewed job (Celery in production, inline in the embedded default)."""
    job = get_job(actor=actor, job_id=job_id)
    job = lock(BulkJob.objects, "bulk_job").get(pk=job.pk)
    if job.status != BulkJob.Status.PREVIEWED:
        raise JobState(f"The job is {job.status}.", status=job.status)
    job.status = BulkJob.Status.QUEUED
    job.heartbeat_at = timezone.now()
    job.save(update_fields=["status", "heartbeat_at"])
    transaction.on_commit(lambda: _launch(job.pk))
    return job


def _launch(job_id: int) -> None:
    """Celery in production; a thread of this process in the embedded default
    (so the page can watch it); inline when neither (tests)."""
    if settings.BULK_JOBS_IN_THREAD:
        threading.Thread(target=_run_in_thread, args=(job_id,), name=f"bulk-job-{job_id}", daemon=True).start()
        return
    from core.tasks import enqueue
    from incidents.tasks import run_bulk_job

    enqueue(run_bulk_job, job_id)  # if the broker is away, the stalled-job sweep starts it


def run_job_in_one_loop(*, job_id: int, **options) -> BulkJob:
    """``run_job`` under one event loop: each progress and message publish
    (``async_to_sync`` from sync code) then reuses it and its Redis connection
    instead of starting a thread, a loop and a connection per frame (bench/bulk.py
    measured 2.3–3.0 ms a frame that way against 0.18 ms). For callers outside
    any loop: the Celery task and the embedded default's thread."""
    async def main() -> BulkJob:
        return await sync_to_async(run_job, thread_sensitive=True)(job_id=job_id, **options)

    return async_to_sync(main)()


def _run_in_thread(job_id: int) -> None:
    from django.db import connections

    try:
        run_job_in_one_loop(job_id=job_id)
    except Exception:  # the sweep resumes it; never kill the server for it
        logger.exception("bulk job %s stopped", job_id)
    finally:
        connections.close_all()


@transaction.atomic(durable=True)
def resume_stalled_jobs(*, now: datetime | None = None) -> list[int]:
    """Jobs queued or running whose heartbeat stopped (a worker or the server
    died mid-way) are launched again; ``run_job`` picks up their pending items."""
    now = now or timezone.now()
    stalled = list(lock(BulkJob.objects, "bulk_job", skip_locked=True).filter(
        status__in=[BulkJob.Status.QUEUED, BulkJob.Status.RUNNING],
        heartbeat_at__lt=now - timedelta(seconds=settings.BULK_STALLED_AFTER_S),
    ).values_list("pk", flat=True))
    if stalled:
        BulkJob.objects.filter(pk__in=stalled).update(status=BulkJob.Status.QUEUED, heartbeat_at=now)
        for job_id in stalled:
            transaction.on_commit(lambda job_id=job_id: _launch(job_id))
    return stalled


def run_job(*, job_id: int, progress_every: int | None = None, progress_interval_s: float | None = None,
            stop_after: int | None = None) -> BulkJob:
    """Work through the job's pending items in order, each through the owning
    app's service with a key derived from the job and the item, then mark the
    item. Safe to call again after a crash: done items are not touched, and an
    item whose action committed but whose mark did not is recognised by its key.
    Progress is written and published every ``progress_every`` items or
    ``progress_interval_s`` seconds. ``stop_after`` simulates a crash (tests)."""
    every = progress_every or settings.BULK_PROGRESS_EVERY
    interval = settings.BULK_PROGRESS_INTERVAL_S if progress_interval_s is None else progress_interval_s
    with transaction.atomic():
        job = lock(BulkJob.objects, "bulk_job").select_related("created_by").get(pk=job_id)
        if job.status not in (BulkJob.Status.QUEUED, BulkJob.Status.RUNNING):
            return job
        job.status = BulkJob.Status.RUNNING
        job.started_at = job.started_at or timezone.now()
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["status", "started_at", "heartbeat_at"])
    actor = job.created_by
    tally = {"done": 0, "skipped": 0, "failed": 0}
    last_report, since_report, handled = time.monotonic(), 0, 0
    while True:
        batch = list(job.items.filter(status=BulkJobItem.Status.PENDING).order_by("id")[:200])
        if not batch:
            break
        for item in batch:
            status, result = _run_item(job, item, actor)
            marked = BulkJobItem.objects.filter(pk=item.pk, status=BulkJobItem.Status.PENDING).update(
                status=status, result=result, processed_at=timezone.now())
            if marked:  # a second worker on the same job (a redelivery) counts nothing twice
                tally[status] += 1
            since_report += 1
            handled += 1
            if since_report >= every or time.monotonic() - last_report >= interval:
                _report(job, tally)
                tally = {"done": 0, "skipped": 0, "failed": 0}
                last_report, since_report = time.monotonic(), 0
            if stop_after is not None and handled >= stop_after:
                _report(job, tally)
                return BulkJob.objects.get(pk=job.pk)
    _report(job, tally)
    now = timezone.now()
    undo = now + timedelta(seconds=settings.CANCEL_UNDO_WINDOW_S) if job.kind == BulkJob.Kind.CANCEL else None
    finished = BulkJob.objects.filter(pk=job.pk, status=BulkJob.Status.RUNNING).update(
        status=BulkJob.Status.DONE, finished_at=now, undo_until=undo)
    job.refresh_from_db()
    if finished and job.incident_id:  # one "done" on the timeline, whichever worker finished
        IncidentEvent.objects.create(incident_id=job.incident_id, kind="job_done", actor=actor, created_at=now,
                                     data={"job_id": job.pk, "kind": job.kind, "done": job.done_count,
                                           "skipped": job.skipped_count, "failed": job.failed_count})
    send_now(CONSOLE, _progress_payload(job))
    return job


def _report(job: BulkJob, tally: dict[str, int]) -> None:
    BulkJob.objects.filter(pk=job.pk).update(done_count=F("done_count") + tally["done"],
                                             skipped_count=F("skipped_count") + tally["skipped"],
                                             failed_count=F("failed_count") + tally["failed"],
                                             heartbeat_at=timezone.now())
    job.refresh_from_db(fields=["done_count", "skipped_count", "failed_count", "status", "total"])
    send_now(CONSOLE, _progress_payload(job))


def _progress_payload(job: BulkJob) -> dict[str, Any]:
    return {"type": "bulk.progress", "job_id": job.pk, "status": job.status, "total": job.total,
            "done": job.done_count, "skipped": job.skipped_count, "failed": job.failed_count,
            "percent": job.percent}


def _run_item(job: BulkJob, item: BulkJobItem, actor) -> tuple[str, dict]:
    key = f"bulk-{job.pk}-{item.target_id}"
    try:
        if job.kind == BulkJob.Kind.MACRO_REPLY:
            ticket = (Ticket.objects.select_related("buyer", "merchant", "order", "order__shipment", "assignee")
                      .filter(pk=item.target_id).first())
            if ticket is None or not ticket.is_active:
                return BulkJobItem.Status.SKIPPED, {"reason": "not_open"}
            text, missing = _render_macro(job, ticket, actor)
            if missing:
                return BulkJobItem.Status.SKIPPED, {"reason": "unfilled", "placeholders": missing}
            message = tickets.post_message(actor=actor, ticket_id=ticket.pk, body=text, client_msg_id=key)
            return BulkJobItem.Status.DONE, {"seq": message.seq}
        if job.kind == BulkJob.Kind.REMEDY:
            p = job.params
            outcome = compensation.apply_remedy(actor=actor, ticket_id=item.target_id, kind=p["remedy"],
                                                reason=p["reason"], amount_fen=p.get("amount_fen"),
                                                with_coupon=p.get("with_coupon", False), idempotency_key=key)
            return BulkJobItem.Status.DONE, {"remedy_id": outcome.remedy_id, "status": outcome.body.get("status")}
        cancellation = merchants.cancel_order(actor=actor, order_id=item.target_id, reason=job.params["reason"])
        return BulkJobItem.Status.DONE, {"cancellation_id": cancellation.pk}
    except DomainError as error:
        if error.code == "already_cancelled" and job.kind == BulkJob.Kind.CANCEL:
            return BulkJobItem.Status.SKIPPED, {"reason": error.code}
        return BulkJobItem.Status.FAILED, {"code": error.code, "detail": str(error.detail)}


def undo_job(*, actor, job_id: int) -> BulkJob:
    """Put back every order a cancel job cancelled, within the undo window."""
    job = get_job(actor=actor, job_id=job_id)
    if job.kind != BulkJob.Kind.CANCEL or job.status != BulkJob.Status.DONE:
        raise JobState("Only a finished cancel job can be undone.", status=job.status)
    if not merchant_rules.undo_open(undo_until=job.undo_until, now=timezone.now()):
        raise UndoExpired()
    failed = 0
    for item in job.items.filter(status=BulkJobItem.Status.DONE).order_by("id"):
        try:
            merchants.restore_order(actor=actor, order_id=item.target_id)
        except DomainError as error:
            if error.code != "not_cancelled":
                failed += 1
                BulkJobItem.objects.filter(pk=item.pk).update(result={**item.result, "undo": error.code})
                continue
        BulkJobItem.objects.filter(pk=item.pk).update(status=BulkJobItem.Status.UNDONE)
    BulkJob.objects.filter(pk=job.pk).update(status=BulkJob.Status.UNDONE)
    job.refresh_from_db()
    if job.incident_id:
        IncidentEvent.objects.create(incident_id=job.incident_id, kind="job_undone", actor=actor,
                                     created_at=timezone.now(), data={"job_id": job.pk, "failed": failed})
    send_now(CONSOLE, _progress_payload(job))
    return job


__all__ = [
    "TicketQuery", "close_incident", "create_bulk_job", "get_job", "ingest_logistics_event", "link_tickets",
    "open_incident", "preview_job", "resume_stalled_jobs", "run_job", "run_job_in_one_loop", "start_job", "sweep_incident_rules",
    "undo_job",
]
