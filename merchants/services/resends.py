"""Compelled resends: a remedy makes the merchant ship again by a deadline; the
merchant enters the new parcel; missed deadlines count against its credit."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from core.errors import InvalidInput
from core.locks import lock
from core.realtime import publish_on_commit
from core.rows import insert
from accounts import roles
from merchants import rules
from merchants.errors import AlreadyIntercepted, InterceptUnavailable, NotFound, PermissionDenied, TaskNotOpen
from merchants.models import Order, ResendTask, Shipment, ShipmentIntercept
from merchants.selectors import merchant_id_for, options_after_shipment
from merchants.services.credit import compute_credit
from merchants.services.credit_policy import score_and_policy
from merchants.services.orders import merchant_group

RESEND_DEADLINE = timedelta(hours=48)


def create_resend_task(*, order: Order, ticket_id: int, reason: str, now: datetime,
                       deadline: timedelta | None = None) -> ResendTask:
    """Compel the merchant to ship again (the remedies issue calls this inside
    its own transaction). The deadline is the credit policy's
    (``resend_hours``), shorter below its ``short_resend_below`` score."""
    assert transaction.get_connection().in_atomic_block, "runs inside the caller's transaction"
    if deadline is None:
        score, policy = score_and_policy(merchant_id=order.merchant_id)
        hours = rules.resend_deadline_hours(score=100 if score is None else score, policy=policy)
        deadline = timedelta(hours=hours)
    task = ResendTask(merchant_id=order.merchant_id, order=order, ticket_id=ticket_id, reason=reason[:255],
                      deadline_at=now + deadline, created_at=now)
    insert(task)
    publish_on_commit([merchant_group(order.merchant_id)], {"type": "resend.task", "task_id": task.pk,
                                                           "order_no": order.order_no,
                                                           "deadline_at": task.deadline_at.isoformat()})
    return task


def lock_shipment_of(*, order_id: int) -> Shipment | None:
    """The order's shipment, locked (shipments come before tickets and orders
    in the lock order: a caller that also locks the ticket takes this first)."""
    assert transaction.get_connection().in_atomic_block, "runs inside the caller's transaction"
    return lock(Shipment.objects, "shipment").filter(order_id=order_id).first()


def intercept_and_resend(*, actor, order_id: int, shipment: Shipment | None, ticket_id: int, reason: str,
                         now: datetime) -> ShipmentIntercept:
    """After shipment, while the parcel travels: ask the carrier to intercept
    it (recorded on the shipment) and compel the merchant to resend, together.
    Inside the caller's transaction (``tickets`` records it on the ticket),
    with ``shipment`` locked by ``lock_shipment_of``; the order is locked here.
    409 ``intercept_unavailable`` before shipment or once delivered (with the
    options that remain), ``already_intercepted`` for a second request."""
    assert transaction.get_connection().in_atomic_block, "runs inside the caller's transaction"
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff intercept parcels.")
    reason = (reason or "").strip() if isinstance(reason, str) else ""
    if not 1 <= len(reason) <= 255:
        raise InvalidInput("reason is 1–255 characters.", field="reason")
    order = lock(Order.objects, "order").filter(pk=order_id).first()
    if order is None:
        raise NotFound("Order not found.")
    if shipment is None or not rules.intercept_allowed(order_status=order.status, shipment_status=shipment.status):
        remaining = options_after_shipment(order)
        raise InterceptUnavailable(options=remaining.options, applies=remaining.applies)
    if ShipmentIntercept.objects.filter(shipment=shipment).exists():
        raise AlreadyIntercepted()
    task = create_resend_task(order=order, ticket_id=ticket_id, reason=reason, now=now)
    intercept = ShipmentIntercept.objects.create(
        shipment=shipment, order=order, resend_task=task, ticket_id=ticket_id, requested_by=actor, reason=reason,
        shipment_status_before=shipment.status, requested_at=now,
    )
    publish_on_commit([merchant_group(order.merchant_id)], {
        "type": "shipment.intercepted", "order_id": order.pk, "order_no": order.order_no,
        "tracking_no": shipment.tracking_no, "task_id": task.pk,
    })
    return intercept


@transaction.atomic(durable=True)
def fulfil_resend_task(*, actor, task_id: int, carrier: str, tracking_no: str,
                       now: datetime | None = None) -> ResendTask:
    """The merchant enters the carrier and tracking number of the new parcel."""
    carrier = (carrier or "").strip()
    tracking_no = (tracking_no or "").strip()
    if not carrier or len(carrier) > 32:
        raise InvalidInput("carrier is 1–32 characters.", field="carrier")
    if not tracking_no or len(tracking_no) > 64 or not tracking_no.replace("-", "").isalnum():
        raise InvalidInput("tracking_no is 1–64 letters and digits.", field="tracking_no")
    task = lock(ResendTask.objects, "resend_task").filter(pk=task_id).first()
    if task is None or merchant_id_for(user=actor) != task.merchant_id:
        raise NotFound("Task not found.")
    if task.status != ResendTask.Status.OPEN:
        raise TaskNotOpen()
    task.status = ResendTask.Status.FULFILLED
    task.carrier = carrier
    task.tracking_no = tracking_no
    task.fulfilled_at = now or timezone.now()
    task.save(update_fields=["status", "carrier", "tracking_no", "fulfilled_at"])
    return task


def mark_missed_resends(*, now: datetime | None = None) -> list[ResendTask]:
    """Mark open tasks past their deadline missed (idempotent) and recompute
    the merchants' credit. ``tickets`` escalates the tickets."""
    now = now or timezone.now()
    missed = []
    with transaction.atomic():
        for task in lock(ResendTask.objects, "resend_task", skip_locked=True).filter(
            status=ResendTask.Status.OPEN, deadline_at__lt=now
        ).order_by("pk")[:500]:
            task.status = ResendTask.Status.MISSED
            task.missed_at = now
            task.save(update_fields=["status", "missed_at"])
            missed.append(task)
    for merchant_id in sorted({t.merchant_id for t in missed}):
        compute_credit(merchant_id=merchant_id, now=now)
    return missed


__all__ = [
    "RESEND_DEADLINE", "create_resend_task", "fulfil_resend_task", "intercept_and_resend", "lock_shipment_of",
    "mark_missed_resends",
]
