"""A failed campaign coupon, compensated (emergency plan): register the
affected buyers (by the campaign code their tickets name, an uploaded list,
or the coupon-failure tickets of a period), preview, then compensate them in
one bulk job through the remedy service: a replacement coupon or cashback on
the order, inside every cap, at most once per buyer whoever runs it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import roles
from compensation import services as compensation
from compensation.models import Remedy
from core.errors import DomainError
from core.locks import lock
from incidents.errors import CouponFailureExists, InvalidInput, JobState, NotFound
from incidents.models import AffectedBuyer, BulkJob, BulkJobItem, CouponFailure
from incidents.services.bulk import create_bulk_job, start_job
from incidents.services.incidents import clean_text, require_supervisor
from tickets.models import Category, Message, Ticket
from tickets.services.tickets import open_ticket_in

CODE = re.compile(r"^[A-Za-z0-9_\-]{2,32}$")
MAX_AMOUNT_FEN = 100_000  # ¥1,000: more than any campaign coupon; anything above is a typo
MAX_LIST = 20_000
# the tickets that name a code are looked for over the campaign's last month
CODE_LOOKBACK = timedelta(days=31)
MAX_QUERY_SPAN = timedelta(days=31)
PHONE = re.compile(r"^\+?\d{7,15}$")


@transaction.atomic(durable=True)
def create_coupon_failure(*, actor, code: str, title: str, remedy: str, reason: str,
                          amount_fen: int | None = None) -> CouponFailure:
    """Register a failed coupon: its code, how it is made good (a replacement
    coupon, by default worth the policy's coupon; or cashback of
    ``amount_fen`` on the order) and why. 409 when the code is registered."""
    require_supervisor(actor)
    code = (code or "").strip() if isinstance(code, str) else ""
    if not CODE.fullmatch(code):
        raise InvalidInput("code is 2–32 letters, digits, _ or -.", field="code")
    title = clean_text(title, field="title", max_chars=120)
    reason = clean_text(reason, field="reason", max_chars=255)
    if remedy not in CouponFailure.Remedy.values:
        raise InvalidInput(f"remedy is one of {', '.join(CouponFailure.Remedy.values)}.", field="remedy")
    if amount_fen is None and remedy == CouponFailure.Remedy.COUPON:
        amount_fen = compensation.get_policy().coupon_fen
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or not 1 <= amount_fen <= MAX_AMOUNT_FEN:
        raise InvalidInput(f"amount_fen is 1 to {MAX_AMOUNT_FEN}.", field="amount_fen")
    try:
        with transaction.atomic():
            return CouponFailure.objects.create(code=code, title=title, remedy=remedy, amount_fen=amount_fen,
                                                reason=reason, created_by=actor)
    except IntegrityError:
        raise CouponFailureExists() from None


@dataclass
class Registered:
    added: int = 0
    already: int = 0
    unknown: list[str] = field(default_factory=list)


def _buyers_from_list(entries: list) -> tuple[set[int], list[str]]:
    """Buyer ids, usernames or phone numbers, one per entry; what matches no
    buyer comes back as unknown."""
    if not isinstance(entries, list) or not all(isinstance(e, (str, int)) and not isinstance(e, bool) for e in entries):
        raise InvalidInput("entries is a list of buyer ids, usernames or phone numbers.", field="entries")
    if len(entries) > MAX_LIST:
        raise InvalidInput(f"At most {MAX_LIST} entries at once.", field="entries")
    wanted = {str(e).strip() for e in entries if str(e).strip()}
    phones = {e.lstrip("+") for e in wanted if PHONE.fullmatch(e) and len(e.lstrip("+")) >= 11}
    ids = {int(e) for e in wanted if e.isdigit() and len(e) < 11}
    names = {e[:150] for e in wanted}
    buyers = get_user_model().objects.filter(groups__name=roles.BUYER).filter(
        Q(pk__in=ids) | Q(username__in=names) | Q(phone__in=phones))
    found: set[int] = set()
    matched: set[str] = set()
    for pk, username, phone in buyers.values_list("pk", "username", "phone"):
        found.add(pk)
        matched.update({str(pk), username, phone, f"+{phone}" if phone else ""})
    unknown = sorted(e for e in wanted if e not in matched and e.lstrip("+") not in matched)
    return found, unknown


def _coupon_tickets():
    return Ticket.objects.filter(category=Category.COUPON_FAILURE, buyer__isnull=False)


@transaction.atomic(durable=True)
def register_buyers(*, actor, failure_id: int, source: str, entries: list | None = None,
                    since: datetime | None = None, until: datetime | None = None) -> Registered:
    """Add affected buyers from one source; a buyer registered before stays
    once. Each is matched to their latest coupon-failure ticket (where the
    compensation lands) and its order (cashback)."""
    require_supervisor(actor)
    failure = lock(CouponFailure.objects, "coupon_failure").filter(pk=failure_id).first()
    if failure is None:
        raise NotFound("No such failed coupon.")
    now = timezone.now()
    result = Registered()
    if source == AffectedBuyer.Source.CODE:
        opening = Message.objects.filter(seq=1, body__icontains=failure.code).values("ticket_id")
        buyer_ids = set(_coupon_tickets().filter(created_at__gte=now - CODE_LOOKBACK).filter(
            Q(subject__icontains=failure.code) | Q(pk__in=opening)).values_list("buyer_id", flat=True))
    elif source == AffectedBuyer.Source.QUERY:
        if not isinstance(since, datetime) or not isinstance(until, datetime) or since >= until:
            raise InvalidInput("since and until are times, since before until.", field="since")
        if until - since > MAX_QUERY_SPAN:
            raise InvalidInput("The period is at most 31 days.", field="until")
        buyer_ids = set(_coupon_tickets().filter(created_at__gte=since, created_at__lt=until)
                        .values_list("buyer_id", flat=True))
    elif source == AffectedBuyer.Source.LIST:
        buyer_ids, result.unknown = _buyers_from_list(entries if entries is not None else [])
    else:
        raise InvalidInput(f"source is one of {', '.join(AffectedBuyer.Source.values)}.", field="source")
    already = set(failure.buyers.filter(buyer_id__in=buyer_ids).values_list("buyer_id", flat=True))
    new_ids = sorted(buyer_ids - already)
    latest: dict[int, tuple[int, int | None]] = {}
    for ticket_id, buyer_id, order_id in (_coupon_tickets().filter(buyer_id__in=new_ids)
                                          .order_by("buyer_id", "-created_at", "-pk")
                                          .values_list("pk", "buyer_id", "order_id")):
        latest.setdefault(buyer_id, (ticket_id, order_id))
    AffectedBuyer.objects.bulk_create([
        AffectedBuyer(failure=failure, buyer_id=pk, source=source, ticket_id=latest.get(pk, (None, None))[0],
                      order_id=latest.get(pk, (None, None))[1], registered_at=now)
        for pk in new_ids
    ], batch_size=2000)
    result.added, result.already = len(new_ids), len(already)
    return result


def compensate(*, actor, failure_id: int, idempotency_key: str | None) -> BulkJob:
    """One bulk job over the registered buyers not yet compensated (those
    refused before are tried again), started at once. Money moves, so the
    ``Idempotency-Key`` is required: a retry gets the same job back."""
    require_supervisor(actor)
    if not CouponFailure.objects.filter(pk=failure_id).exists():
        raise NotFound("No such failed coupon.")
    job = create_bulk_job(actor=actor, kind=BulkJob.Kind.COUPON_COMPENSATION, params={"failure_id": failure_id},
                          idempotency_key=idempotency_key)
    if job.status == BulkJob.Status.PREVIEWED:
        try:
            job = start_job(actor=actor, job_id=job.pk)
        except JobState:  # a retry racing the first request: it started it
            job.refresh_from_db()
    CouponFailure.objects.filter(pk=failure_id).update(job=job)
    return job


def compensate_one(*, actor, affected_id: int, key: str) -> tuple[str, dict]:
    """One buyer of a compensation job: skip one already compensated (by any
    job), land the compensation on the buyer's coupon-failure ticket (opened
    for them when they have no open one), apply it through the remedy service
    with a key of its own per failure and buyer, and record the outcome."""
    with transaction.atomic():
        affected = (lock(AffectedBuyer.objects, "affected_buyer", of=("self",)).select_related("failure", "ticket")
                    .filter(pk=affected_id).first())
        if affected is None:
            return BulkJobItem.Status.SKIPPED, {"reason": "not_registered"}
        if affected.outcome in (AffectedBuyer.Outcome.EXECUTED, AffectedBuyer.Outcome.PENDING_APPROVAL):
            return BulkJobItem.Status.SKIPPED, {"reason": "already_compensated", "remedy_id": affected.remedy_id}
        failure = affected.failure
        if failure.remedy == CouponFailure.Remedy.CASHBACK and affected.order_id is None:
            _record(affected, AffectedBuyer.Outcome.FAILED, detail={"code": "order_not_eligible"})
            return BulkJobItem.Status.FAILED, {"code": "order_not_eligible", "detail": "No order to pay cashback on."}
        ticket = affected.ticket
        if ticket is None or not ticket.is_active:
            ticket = open_ticket_in(
                actor=actor, category=Category.COUPON_FAILURE, buyer_id=affected.buyer_id,
                order_id=affected.order_id, channel="api",
                subject=f"{failure.title} ({failure.code})"[:200],
                body=f"{failure.reason}\n[{failure.code}]",
            )
            affected.ticket = ticket
            affected.save(update_fields=["ticket"])
    kind = Remedy.Kind.COUPON if failure.remedy == CouponFailure.Remedy.COUPON else Remedy.Kind.REFUND
    try:
        outcome = compensation.apply_remedy(
            actor=actor, ticket_id=ticket.pk, kind=kind, amount_fen=failure.amount_fen,
            reason=f"{failure.reason} [{failure.code}]"[:255],
            idempotency_key=f"coupon-failure-{failure.pk}-{affected.buyer_id}")
    except DomainError as error:
        with transaction.atomic():
            _record(lock(AffectedBuyer.objects, "affected_buyer").get(pk=affected_id), AffectedBuyer.Outcome.FAILED,
                    detail={"code": error.code, "detail": str(error.detail)})
        return BulkJobItem.Status.FAILED, {"code": error.code, "detail": str(error.detail)}
    status = outcome.body.get("status")
    with transaction.atomic():
        _record(lock(AffectedBuyer.objects, "affected_buyer").get(pk=affected_id),
                AffectedBuyer.Outcome.EXECUTED if status == "executed" else AffectedBuyer.Outcome.PENDING_APPROVAL,
                remedy_id=outcome.remedy_id, detail={"reasons": outcome.body.get("reasons", [])})
    return BulkJobItem.Status.DONE, {"remedy_id": outcome.remedy_id, "status": status, "ticket_id": ticket.pk}


def _record(affected: AffectedBuyer, outcome: str, *, remedy_id: int | None = None, detail: dict) -> None:
    affected.outcome = outcome
    affected.remedy_id = remedy_id if remedy_id is not None else affected.remedy_id
    affected.detail = detail
    affected.compensated_at = timezone.now() if remedy_id is not None else affected.compensated_at
    affected.save(update_fields=["outcome", "remedy_id", "detail", "compensated_at"])


__all__ = ["Registered", "compensate", "compensate_one", "create_coupon_failure", "register_buyers"]
