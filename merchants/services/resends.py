"""Compelled resends: a remedy makes the merchant ship again by a deadline; the
merchant enters the new parcel; missed deadlines count against its credit."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from core.errors import InvalidInput
from core.locks import lock
from core.realtime import publish_on_commit
from merchants.errors import NotFound, TaskNotOpen
from merchants import rules
from merchants.models import Order, ResendTask
from merchants.selectors import merchant_id_for
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
    task = ResendTask.objects.create(
        merchant_id=order.merchant_id, order=order, ticket_id=ticket_id, reason=reason[:255],
        deadline_at=now + deadline, created_at=now,
    )
    publish_on_commit([merchant_group(order.merchant_id)], {"type": "resend.task", "task_id": task.pk,
                                                           "order_no": order.order_no,
                                                           "deadline_at": task.deadline_at.isoformat()})
    return task


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


__all__ = ["RESEND_DEADLINE", "create_resend_task", "fulfil_resend_task", "mark_missed_resends"]
