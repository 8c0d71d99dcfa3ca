"""Carrier events: store each once, turn an exception into the buyer's ticket,
and the incident rules those events feed (a region passing a rule's threshold
raises its grade-2 incident, once), both as events arrive and in the periodic sweep.

The rules live with the events they count: they share the exception → ticket
category table, and only events ever trigger them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext, override

from accounts import roles
from core.locks import lock
from incidents.rules import reaches_threshold
from incidents.errors import InvalidInput, PermissionDenied, UnknownShipment
from incidents.models import Incident, LogisticsEvent
from incidents.services.incidents import add_links, create_incident
from merchants.models import Order, Shipment
from tickets import services as tickets
from tickets import sla
from tickets.models import Category, Ticket, TicketEvent
from tickets.services.conversation import append_notice

# what an exception means for the buyer's ticket
EXCEPTION_CATEGORY = {
    LogisticsEvent.Kind.LOST: Category.NOT_RECEIVED,
    LogisticsEvent.Kind.DAMAGED: Category.PARCEL_DAMAGED,
    LogisticsEvent.Kind.STUCK: Category.LOGISTICS_DELAY,
    LogisticsEvent.Kind.BACKLOG: Category.LOGISTICS_DELAY,
    LogisticsEvent.Kind.RETURNED: Category.LOGISTICS_DELAY,
    # grade 1: the parcel is gone or held for good
    LogisticsEvent.Kind.THEFT: Category.NOT_RECEIVED,
    LogisticsEvent.Kind.ROBBERY: Category.NOT_RECEIVED,
    LogisticsEvent.Kind.SEIZURE: Category.NOT_RECEIVED,
    LogisticsEvent.Kind.TRAFFIC_ACCIDENT: Category.LOGISTICS_DELAY,
    LogisticsEvent.Kind.PROHIBITED_ITEMS: Category.LOGISTICS_DELAY,
}
LOGISTICS_CATEGORIES = (Category.NOT_RECEIVED, Category.PARCEL_DAMAGED, Category.LOGISTICS_DELAY)
SHIPMENT_STATUS = {
    LogisticsEvent.Kind.PICKED_UP: Shipment.Status.IN_TRANSIT,
    LogisticsEvent.Kind.IN_TRANSIT: Shipment.Status.IN_TRANSIT,
    LogisticsEvent.Kind.OUT_FOR_DELIVERY: Shipment.Status.OUT_FOR_DELIVERY,
    LogisticsEvent.Kind.DELIVERED: Shipment.Status.DELIVERED,
    LogisticsEvent.Kind.RETURNED: Shipment.Status.RETURNED,
}
# the emergency plan's grade-2 thresholds: this many parcels "or more" (以上 includes the number) in a
# region within the window (INCIDENT_RULE_THRESHOLDS: 20 backlog, 5 lost, 100 stuck)
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
    if clean["kind"] in LogisticsEvent.SEVERE:
        incident = _raise_severe(event=event, region=order.region, now=now)
    else:
        incident = _apply_rules(region=order.region, kind=clean["kind"], now=now)
    if incident is not None:
        add_links(incident, [ticket.pk], actor=None, now=now)
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


def _raise_severe(*, event: LogisticsEvent, region: str, now: datetime) -> Incident:
    """A grade-1 carrier event (theft, robbery, seizure, traffic accident,
    prohibited items) raises the grade-1 incident of its kind in its region,
    owned by the head, with a 12 h deadline; further events of that kind
    there join the open one."""
    rule, kind = event.kind, event.kind
    open_incident = Incident.objects.filter(status=Incident.Status.OPEN, rule=rule, region=region).first()
    if open_incident is not None:
        return open_incident
    with override(settings.LANGUAGE_CODE):  # stored text, in the console's language
        title = f"{Incident.Rule(rule).label} · {region or event.carrier}"
        description = gettext(
            "%(carrier)s reports %(what)s for parcel %(tracking_no)s at %(location)s: a grade-1 event, owned by the head."
        ) % {"carrier": event.carrier, "what": LogisticsEvent.Kind(kind).label, "tracking_no": event.tracking_no,
             "location": event.location or region or "—"}
    try:
        with transaction.atomic():
            return create_incident(
                title=title, grade=sla.GRADE_SEVERE, actor=None, now=now, rule=rule, region=region,
                carrier=event.carrier, category=EXCEPTION_CATEGORY[kind], description=description,
            )
    except IntegrityError:  # a parallel event raised it first
        return Incident.objects.get(status=Incident.Status.OPEN, rule=rule, region=region)


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
    if not reaches_threshold(parcels=parcels, threshold=settings.INCIDENT_RULE_THRESHOLDS[rule]):
        return None
    with override(settings.LANGUAGE_CODE):  # stored text, in the console's language
        title = f"{Incident.Rule(rule).label} · {region}"
        description = gettext(
            "%(parcels)s parcels in %(region)s within %(hours)s h (the rule: %(limit)s or more)."
        ) % {"parcels": parcels, "region": region, "hours": settings.INCIDENT_RULE_WINDOW_HOURS,
             "limit": settings.INCIDENT_RULE_THRESHOLDS[rule]}
    try:
        with transaction.atomic():
            incident = create_incident(
                title=title, grade=sla.GRADE_SERIOUS, actor=None, now=now, rule=rule,
                region=region, category=EXCEPTION_CATEGORY[kind], description=description,
            )
    except IntegrityError:  # a parallel event raised it first
        return Incident.objects.filter(status=Incident.Status.OPEN, rule=rule, region=region).first()
    # the tickets of the parcels that made it fire belong to it
    ids = list(LogisticsEvent.objects.filter(region=region, kind=kind, occurred_at__gte=window, ticket__isnull=False)
               .values_list("ticket_id", flat=True))
    add_links(incident, ids, actor=None, now=now)
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


__all__ = ["EXCEPTION_CATEGORY", "IngestResult", "ingest_logistics_event", "sweep_incident_rules"]
