"""Bulk jobs: create one (its items fixed now, so what the preview shows is what
runs), start it, undo a finished cancel job. Running it is ``runner``'s; its
preview is a read (``incidents.selectors.preview_job``).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from compensation.models import Remedy
from core.errors import DomainError, IdempotencyConflict
from core.idempotency import request_hash, require_idempotency_key
from core.locks import lock
from core.realtime import send_now
from incidents.errors import InvalidInput, JobState, UndoExpired
from incidents.models import AffectedBuyer, BulkJob, BulkJobItem, Incident, IncidentEvent
from incidents.selectors import get_job_for
from incidents.services.incidents import clean_text, lock_open_incident, require_supervisor
from incidents.services.runner import launch, progress_payload
from merchants import rules as merchant_rules
from merchants import services as merchant_services
from merchants.models import Order
from tickets.events import CONSOLE
from tickets.models import Ticket

JOB_TARGET_LIMIT = 20000
TICKET_JOBS = (BulkJob.Kind.MACRO_REPLY, BulkJob.Kind.REMEDY)
# jobs that move money: creating one needs an Idempotency-Key
MONEY_JOBS = (BulkJob.Kind.REMEDY, BulkJob.Kind.COUPON_COMPENSATION)


def _clean_params(kind: str, params: Any) -> dict[str, Any]:
    if not isinstance(params, dict):
        raise InvalidInput("params is an object.", field="params")
    if kind == BulkJob.Kind.MACRO_REPLY:
        return {"body": clean_text(params.get("body"), field="body", max_chars=settings.BODY_MAX_CHARS)}
    if kind == BulkJob.Kind.REMEDY:
        remedy_kind = params.get("remedy")
        if remedy_kind not in Remedy.Kind.values:
            raise InvalidInput(f"remedy is one of {', '.join(Remedy.Kind.values)}.", field="remedy")
        amount = params.get("amount_fen")
        if amount is not None and (isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0):
            raise InvalidInput("amount_fen is a positive integer.", field="amount_fen")
        return {"remedy": remedy_kind, "amount_fen": amount, "with_coupon": bool(params.get("with_coupon")),
                "reason": clean_text(params.get("reason"), field="reason", max_chars=255)}
    if kind == BulkJob.Kind.COUPON_COMPENSATION:
        failure_id = params.get("failure_id")
        if isinstance(failure_id, bool) or not isinstance(failure_id, int) or failure_id < 1:
            raise InvalidInput("failure_id is a failed coupon's id.", field="failure_id")
        return {"failure_id": failure_id}
    return {"reason": clean_text(params.get("reason"), field="reason", max_chars=255)}


def _targets(*, kind: str, params: dict[str, Any], incident: Incident | None, ticket_ids: list[int] | None,
             user_ids: list[int] | None) -> list[int]:
    if kind == BulkJob.Kind.COUPON_COMPENSATION:
        # the buyers of the failed coupon not compensated yet (refused ones are tried again)
        return list(AffectedBuyer.objects.filter(failure_id=params["failure_id"]).filter(
            outcome__in=[AffectedBuyer.Outcome.NONE, AffectedBuyer.Outcome.FAILED])
            .order_by("pk").values_list("pk", flat=True)[:JOB_TARGET_LIMIT])
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

    A bulk remedy (or a failed coupon's compensation) moves money once run, so creating one needs an
    ``Idempotency-Key``: a client's retry then gets the same job back (the same
    key with another body is a 409) instead of a second job that would pay
    every buyer again. Other kinds honour a key when one is given."""
    require_supervisor(actor)
    if kind not in BulkJob.Kind.values:
        raise InvalidInput(f"kind is one of {', '.join(BulkJob.Kind.values)}.", field="kind")
    clean = _clean_params(kind, params)
    key = require_idempotency_key(idempotency_key) if kind in MONEY_JOBS else (idempotency_key or "").strip()
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
        incident = lock_open_incident(incident_id)
    elif not (ticket_ids or user_ids) and kind != BulkJob.Kind.COUPON_COMPENSATION:
        raise InvalidInput("Name an incident, tickets or accounts.")
    for name, ids in (("ticket_ids", ticket_ids), ("user_ids", user_ids)):
        if ids is not None and not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise InvalidInput(f"{name} are integers.", field=name)
    targets = _targets(kind=kind, params=clean, incident=incident, ticket_ids=ticket_ids, user_ids=user_ids)
    if not targets:
        raise InvalidInput("Nothing to act on: no matching open tickets, pending orders or buyers to compensate.")
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


@transaction.atomic(durable=True)
def start_job(*, actor, job_id: int) -> BulkJob:
    """Queue a previewed job (Celery in production, inline in the embedded default)."""
    job = get_job_for(user=actor, job_id=job_id)
    job = lock(BulkJob.objects, "bulk_job").get(pk=job.pk)
    if job.status != BulkJob.Status.PREVIEWED:
        raise JobState(f"The job is {job.status}.", status=job.status)
    job.status = BulkJob.Status.QUEUED
    job.heartbeat_at = timezone.now()
    job.save(update_fields=["status", "heartbeat_at"])
    transaction.on_commit(lambda: launch(job.pk))
    return job


def undo_job(*, actor, job_id: int) -> BulkJob:
    """Put back every order a cancel job cancelled, within the undo window."""
    job = get_job_for(user=actor, job_id=job_id)
    if job.kind != BulkJob.Kind.CANCEL or job.status != BulkJob.Status.DONE:
        raise JobState("Only a finished cancel job can be undone.", status=job.status)
    if not merchant_rules.undo_open(undo_until=job.undo_until, now=timezone.now()):
        raise UndoExpired()
    failed = 0
    for item in job.items.filter(status=BulkJobItem.Status.DONE).order_by("id"):
        try:
            merchant_services.restore_order(actor=actor, order_id=item.target_id)
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
    send_now(CONSOLE, progress_payload(job))
    return job


__all__ = ["create_bulk_job", "start_job", "undo_job"]
