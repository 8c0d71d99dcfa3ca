"""What an agent does to a ticket's order once it shipped: intercept the
parcel and compel a resend, in one transaction with the ticket's timeline."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from merchants import services as merchant_services
from merchants.models import ShipmentIntercept
from tickets import events
from tickets.errors import InvalidInput
from tickets.models import TicketEvent
from tickets.selectors import get_ticket_for
from tickets.services.conversation import append_notice


@transaction.atomic(durable=True)
def intercept_and_resend(*, actor, ticket_id: int, reason: str) -> ShipmentIntercept:
    """Ask the carrier to intercept the ticket's parcel (recorded on the
    shipment) and compel the merchant to resend (a resend task with its
    deadline); the ticket's timeline and conversation say so. One transaction:
    all of it or none. Locks the shipment, then the ticket, then the order
    (the global order)."""
    now = timezone.now()
    seen = get_ticket_for(user=actor, ticket_id=ticket_id)  # 404 for a ticket the actor may not see
    if seen.order_id is None:
        raise InvalidInput("The ticket has no order.", field="order_id")
    shipment = merchant_services.lock_shipment_of(order_id=seen.order_id)
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id, lock=True)
    intercept = merchant_services.intercept_and_resend(
        actor=actor, order_id=ticket.order_id, shipment=shipment, ticket_id=ticket.pk, reason=reason, now=now,
    )
    task = intercept.resend_task
    TicketEvent.objects.create(ticket=ticket, kind="intercept_resend", actor=actor, created_at=now, data={
        "order_id": ticket.order_id, "shipment_id": intercept.shipment_id, "intercept_id": intercept.pk,
        "task_id": task.pk, "deadline_at": task.deadline_at.isoformat(), "note": intercept.reason,
    })
    if ticket.status != "closed":
        append_notice(ticket=ticket, notice="parcel_intercepted", now=now, tracking_no=shipment.tracking_no,
                      deadline=timezone.localtime(task.deadline_at).strftime("%Y-%m-%d %H:%M"))
    events.ticket_changed(ticket)
    return intercept


__all__ = ["intercept_and_resend"]
