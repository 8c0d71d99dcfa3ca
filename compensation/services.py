"""Every write of ``compensation``: remedies, approvals, the breaker, policy, blacklist.

``apply_remedy`` takes its locks in the global order (``tickets/locks.py``):
budget day → agent quota → buyer counter → ticket → remedy → order → hold →
merchant account → ledger head, so quota, buyer counter, budget, remedy,
coupon or refund, ledger and ticket timeline commit together or not at all.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from accounts import roles
from core.realtime import publish_on_commit
from compensation import ledger
from compensation.errors import (
    AmountInvalid,
    BudgetStillExhausted,
    BuyerBlacklisted,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    OrderNotEligible,
    OwnRequest,
    PermissionDenied,
    RemedyDecided,
    TicketClosed,
)
from compensation.locks import lock_agent_quota, lock_budget_day, lock_buyer_counter
from compensation.models import (
    BlacklistEntry,
    BreakerReset,
    BudgetDay,
    BuyerCounter,
    Coupon,
    IdempotencyRecord,
    Policy,
    PolicyChange,
    Remedy,
    RemedyEvent,
)
from merchants import services as escrow
from merchants.models import Order
from tickets.events import CONSOLE
from tickets.models import Ticket, TicketEvent
from tickets.selectors import get_ticket_for
from tickets.services.conversation import append_message

MAX_COUPON_FEN = 100_00  # ¥100: a larger "coupon" is a typo
POLICY_FIELDS = ("value_cap_fen", "coupon_fen", "agent_monthly_quota", "buyer_daily_cap", "daily_budget_fen")

REASON_QUOTA = "quota_exhausted"
REASON_VALUE = "over_value_cap"
REASON_BUYER_CAP = "buyer_daily_cap"
REASON_BREAKER = "breaker_open"
REASON_FLAGGED = "buyer_flagged"


def get_policy() -> Policy:
    policy, _ = Policy.objects.get_or_create(pk=1)
    return policy


def period_of(now: datetime) -> str:
    return timezone.localtime(now).strftime("%Y-%m")


# --- checks that refuse outright (422) -------------------------------------------


def active_blacklist(*, kind: str, value: str, now: datetime) -> BlacklistEntry | None:
    return BlacklistEntry.objects.filter(kind=kind, value=value, expires_at__gt=now).order_by("-expires_at").first()


def _refuse_if_ineligible(*, ticket: Ticket, kind: str, now: datetime) -> None:
    if ticket.status in (Ticket.Status.RESOLVED, Ticket.Status.CLOSED):
        raise TicketClosed()
    if ticket.buyer_id is None:
        raise OrderNotEligible("A remedy goes to a buyer; this ticket has none.")
    if active_blacklist(kind=BlacklistEntry.Kind.ACCOUNT, value=ticket.buyer.username, now=now):
        raise BuyerBlacklisted()
    if kind in (Remedy.Kind.REFUND, Remedy.Kind.RESEND):
        order = ticket.order
        if order is None or order.status == Order.Status.CANCELLED:
            raise OrderNotEligible("A refund or resend needs the ticket's order.")
        if kind == Remedy.Kind.RESEND and order.status == Order.Status.PAID:
            raise OrderNotEligible("The order has not shipped; change or cancel it instead of a resend.")


def _amount_for(*, kind: str, amount_fen, order: Order | None, policy: Policy) -> int:
    if amount_fen is not None and (isinstance(amount_fen, bool) or not isinstance(amount_fen, int)):
        raise AmountInvalid()
    if kind == Remedy.Kind.REFUND:
        left = order.refundable_fen
        amount = left if amount_fen is None else amount_fen
        if not 0 < amount <= left:
            raise AmountInvalid(f"A refund is 1 to {left} fen (what is left refundable on the order).")
        return amount
    if kind == Remedy.Kind.COUPON:
        amount = policy.coupon_fen if amount_fen is None else amount_fen
        if not 0 < amount <= MAX_COUPON_FEN:
            raise AmountInvalid(f"A coupon is worth 1 to {MAX_COUPON_FEN} fen.")
        return amount
    if amount_fen not in (None, 0):
        raise AmountInvalid("A resend has no amount.")
    return 0


def refusal_for(*, ticket: Ticket, kind: str, amount_fen=None, now: datetime | None = None):
    """The DomainError ``apply_remedy`` would refuse with (422 or 400), or None:
    the panel shows it before any click."""
    try:
        _refuse_if_ineligible(ticket=ticket, kind=kind, now=now or timezone.now())
        _amount_for(kind=kind, amount_fen=amount_fen, order=ticket.order, policy=get_policy())
    except (AmountInvalid, BuyerBlacklisted, OrderNotEligible, TicketClosed) as refused:
        return refused
    return None


# --- apply --------------------------------------------------------------------------


@dataclass(frozen=True)
class RemedyResult:
    status_code: int
    body: dict
    remedy_id: int
    replayed: bool = False


def request_hash(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _replay(*, scope: str, key: str, digest: str) -> RemedyResult | None:
    record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
    if record is None:
        return None
    if record.request_hash != digest:
        raise IdempotencyConflict()
    return RemedyResult(record.status_code, record.response, record.response["id"], replayed=True)


def apply_remedy(*, actor, ticket_id: int, kind: str, reason: str, amount_fen: int | None = None,
                 with_coupon: bool = False, idempotency_key: str | None = None) -> RemedyResult:
    """Grant a remedy within every cap (201, executed), route it to a
    supervisor when a cap is hit (202, pending_approval, with the reasons), or
    refuse it (422). The same key with the same body replays the first answer;
    with another body it is a 409."""
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff apply remedies.")
    key = (idempotency_key or "").strip() or None
    if key is not None and len(key) > 128:
        raise InvalidInput("Idempotency-Key is at most 128 characters.")
    scope = f"remedy:{actor.pk}"
    digest = request_hash({"ticket_id": ticket_id, "kind": kind, "amount_fen": amount_fen, "reason": reason,
                           "with_coupon": bool(with_coupon)})
    if key and (replayed := _replay(scope=scope, key=key, digest=digest)):
        return replayed
    try:
        return _apply(actor=actor, ticket_id=ticket_id, kind=kind, reason=reason, amount_fen=amount_fen,
                      with_coupon=with_coupon, scope=scope, key=key, digest=digest)
    except IntegrityError:
        # another request with the same key committed first: answer as it did
        if key and (replayed := _replay(scope=scope, key=key, digest=digest)):
            return replayed
        raise


@transaction.atomic(durable=True)
def _apply(*, actor, ticket_id: int, kind: str, reason: str, amount_fen, with_coupon: bool, scope: str,
           key: str | None, digest: str) -> RemedyResult:
    now = timezone.now()
    if kind not in Remedy.Kind.values:
        raise InvalidInput(f"kind is one of {', '.join(Remedy.Kind.values)}.", field="kind")
    reason = (reason or "").strip()
    if not reason or len(reason) > 255:
        raise InvalidInput("Give a reason (at most 255 characters).", field="reason")
    if with_coupon and kind == Remedy.Kind.COUPON:
        raise InvalidInput("with_coupon goes with a refund or a resend.", field="with_coupon")
    record = None
    if key:
        # claimed first: a parallel request with the same key waits here, then replays
        record = IdempotencyRecord.objects.create(scope=scope, key=key, request_hash=digest, status_code=0,
                                                  response={}, created_at=now)
    policy = get_policy()
    ticket = get_ticket_for(user=actor, ticket_id=ticket_id)
    _refuse_if_ineligible(ticket=ticket, kind=kind, now=now)
    amount = _amount_for(kind=kind, amount_fen=amount_fen, order=ticket.order, policy=policy)

    today = timezone.localdate(now)
    budget = lock_budget_day(today, budget_fen=policy.daily_budget_fen)
    quota = lock_agent_quota(actor.pk, period_of(now), limit=policy.agent_monthly_quota)
    counter = lock_buyer_counter(ticket.buyer_id, today)
    ticket = Ticket.objects.select_for_update(of=("self",)).select_related("buyer", "order").get(pk=ticket.pk)
    _refuse_if_ineligible(ticket=ticket, kind=kind, now=now)  # re-checked under the lock

    remedy = Remedy.objects.create(
        ticket=ticket, order=ticket.order, buyer=ticket.buyer,
        requested_by=actor, kind=kind, amount_fen=amount, with_coupon=bool(with_coupon),
        coupon_fen=policy.coupon_fen if with_coupon else 0, reason=reason, created_at=now,
    )
    RemedyEvent.objects.create(remedy=remedy, kind="requested", actor=actor, created_at=now,
                               data={"kind": kind, "amount_fen": amount, "with_coupon": bool(with_coupon)})
    reasons = approval_reasons(policy=policy, ticket=ticket, quota_used=quota.used, quota_limit=quota.limit,
                               buyer_count=counter.count, budget=budget, cost_fen=remedy.cost_fen)
    if reasons:
        if REASON_BREAKER in reasons and not budget.breaker_open and budget.spent_fen + remedy.cost_fen > budget.budget_fen:
            _open_breaker(budget, now)
        remedy.route_to_approval(reasons=reasons)
        remedy.save()
        RemedyEvent.objects.create(remedy=remedy, kind="pending_approval", actor=actor, data={"reasons": reasons},
                                   created_at=now)
        TicketEvent.objects.create(ticket=ticket, kind="remedy_requested", actor=actor, created_at=now,
                                   data={"remedy_id": remedy.pk, "kind": kind, "amount_fen": amount, "reasons": reasons})
        publish_on_commit([CONSOLE], {"type": "remedy.pending", "remedy_id": remedy.pk, "ticket_id": ticket.pk,
                                      "reasons": reasons})
        status_code = 202
    else:
        remedy.auto_approve()
        quota.used += 1
        quota.save(update_fields=["used"])
        _execute(remedy=remedy, budget=budget, counter=counter, ticket=ticket, actor=actor, now=now)
        status_code = 201
    body = remedy_body(remedy)
    if record is not None:
        record.status_code = status_code
        record.response = body
        record.save(update_fields=["status_code", "response"])
    return RemedyResult(status_code, body, remedy.pk)


def approval_reasons(*, policy: Policy, ticket: Ticket, quota_used: int, quota_limit: int, buyer_count: int,
                     budget: BudgetDay, cost_fen: int) -> list[str]:
    """Why a remedy cannot be self-service, in API.md's words (empty: it can)."""
    reasons = []
    if quota_used >= quota_limit:
        reasons.append(REASON_QUOTA)
    if ticket.order is not None and ticket.order.amount_fen > policy.value_cap_fen:
        reasons.append(REASON_VALUE)
    if buyer_count >= policy.buyer_daily_cap:
        reasons.append(REASON_BUYER_CAP)
    if budget.breaker_open or budget.spent_fen + cost_fen > budget.budget_fen:
        reasons.append(REASON_BREAKER)
    if ticket.buyer.account_status != ticket.buyer.AccountStatus.ACTIVE:
        reasons.append(REASON_FLAGGED)
    return reasons


def _open_breaker(budget: BudgetDay, now: datetime) -> None:
    budget.breaker_open = True
    budget.breaker_opened_at = now
    budget.save(update_fields=["breaker_open", "breaker_opened_at"])
    publish_on_commit([CONSOLE], {"type": "breaker", "open": True, "date": budget.date.isoformat(),
                                  "spent_fen": budget.spent_fen, "budget_fen": budget.budget_fen})


def _new_coupon_code() -> str:
    return "CP" + secrets.token_hex(6).upper()


def _execute(*, remedy: Remedy, budget: BudgetDay, counter: BuyerCounter, ticket: Ticket, actor, now: datetime) -> None:
    """Carry out an approved remedy under the caller's locks: spend, counters,
    refund / resend / coupon, ledger, timeline, the buyer's message."""
    policy = get_policy()
    budget.spent_fen += remedy.cost_fen
    budget.save(update_fields=["spent_fen"])
    if not budget.breaker_open and budget.spent_fen >= budget.budget_fen:
        _open_breaker(budget, now)
    counter.count += 1
    counter.save(update_fields=["count"])
    lines: list[tuple[str, int, str]] = []
    told = []
    coupon_codes = []
    if remedy.kind == Remedy.Kind.REFUND:
        order, source = escrow.refund_order(order_id=remedy.order_id, ticket_id=ticket.pk, amount_fen=remedy.amount_fen,
                                            now=now)
        source_account = {"escrow": f"escrow:order:{order.pk}", "hold": f"merchant:{order.merchant_id}",
                          "balance": f"merchant:{order.merchant_id}"}[source]
        lines += [(source_account, -remedy.amount_fen, f"refund ({source})"),
                  (f"buyer:{remedy.buyer_id}", remedy.amount_fen, "refund")]
        told.append(f"退款 {_yuan(remedy.amount_fen)} 已原路退回")
    elif remedy.kind == Remedy.Kind.RESEND:
        task = escrow.create_resend_task(order=remedy.order, ticket_id=ticket.pk, reason=remedy.reason, now=now)
        told.append(f"已要求商家在 {timezone.localtime(task.deadline_at):%m月%d日 %H:%M} 前为您补发")
    coupon_value = remedy.amount_fen if remedy.kind == Remedy.Kind.COUPON else (remedy.coupon_fen if remedy.with_coupon else 0)
    if coupon_value:
        coupon = Coupon.objects.create(
            code=_new_coupon_code(), buyer_id=remedy.buyer_id, remedy=remedy, value_fen=coupon_value,
            threshold_fen=0, issued_at=now, expires_at=now + timedelta(days=policy.coupon_days),
        )
        coupon_codes.append(coupon.code)
        lines += [("platform:compensation", -coupon_value, "coupon"), (f"buyer_coupons:{remedy.buyer_id}", coupon_value, coupon.code)]
        told.append(f"{_yuan(coupon_value)} 无门槛优惠券（{coupon.code}）已发放到您的账户")
    if lines:
        ledger.post(remedy=remedy, lines=lines, now=now)
    remedy.execute(now=now)
    remedy.save()
    RemedyEvent.objects.create(remedy=remedy, kind="executed", actor=actor, created_at=now,
                               data={"cost_fen": remedy.cost_fen, "coupons": coupon_codes})
    TicketEvent.objects.create(ticket=ticket, kind="remedy_executed", actor=actor, created_at=now,
                               data={"remedy_id": remedy.pk, "kind": remedy.kind, "amount_fen": remedy.amount_fen,
                                     "with_coupon": remedy.with_coupon, "coupons": coupon_codes,
                                     "self_service": remedy.self_service})
    append_message(ticket=ticket, author=None, body="，".join(told) + "。", internal=False, now=now, notice="remedy_applied")
    publish_on_commit([CONSOLE], {"type": "budget", "date": budget.date.isoformat(), "spent_fen": budget.spent_fen,
                                  "budget_fen": budget.budget_fen, "breaker_open": budget.breaker_open})


def _yuan(fen: int) -> str:
    from core.money import format_fen

    return format_fen(fen)


def remedy_body(remedy: Remedy) -> dict:
    body = {"id": remedy.pk, "status": remedy.status, "kind": remedy.kind, "amount_fen": remedy.amount_fen,
            "with_coupon": remedy.with_coupon, "coupon_fen": remedy.coupon_fen, "ticket_id": remedy.ticket_id}
    if remedy.status == Remedy.Status.PENDING_APPROVAL:
        body["reasons"] = list(remedy.approval_reasons)
    return body


# --- approvals ------------------------------------------------------------------------


def _decidable(*, actor, remedy_id: int) -> Remedy:
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor decides remedies.")
    remedy = Remedy.objects.filter(pk=remedy_id).first()
    if remedy is None:
        raise NotFound("Remedy not found.")
    if remedy.requested_by_id == actor.pk:
        raise OwnRequest()
    return remedy


@transaction.atomic(durable=True)
def approve_remedy(*, actor, remedy_id: int, reason: str = "") -> Remedy:
    """A supervisor approves; the remedy executes in the same transaction,
    exact against the budget (the budget row is locked first)."""
    remedy = _decidable(actor=actor, remedy_id=remedy_id)
    now = timezone.now()
    policy = get_policy()
    today = timezone.localdate(now)
    budget = lock_budget_day(today, budget_fen=policy.daily_budget_fen)
    counter = lock_buyer_counter(remedy.buyer_id, today)
    ticket = Ticket.objects.select_for_update(of=("self",)).select_related("buyer", "order").get(pk=remedy.ticket_id)
    remedy = Remedy.objects.select_for_update().get(pk=remedy_id)
    if remedy.status != Remedy.Status.PENDING_APPROVAL:
        raise RemedyDecided()
    _refuse_if_ineligible(ticket=ticket, kind=remedy.kind, now=now)
    if remedy.kind == Remedy.Kind.REFUND and remedy.amount_fen > remedy.order.refundable_fen:
        raise AmountInvalid("Less is left to refund on the order than this remedy asks.")
    remedy.approve(by=actor, reason=(reason or "")[:255], now=now)
    remedy.save()
    RemedyEvent.objects.create(remedy=remedy, kind="approved", actor=actor, data={"reason": reason}, created_at=now)
    _execute(remedy=remedy, budget=budget, counter=counter, ticket=ticket, actor=actor, now=now)
    return remedy


@transaction.atomic(durable=True)
def reject_remedy(*, actor, remedy_id: int, reason: str = "") -> Remedy:
    _decidable(actor=actor, remedy_id=remedy_id)
    now = timezone.now()
    remedy = Remedy.objects.select_for_update().get(pk=remedy_id)
    if remedy.status != Remedy.Status.PENDING_APPROVAL:
        raise RemedyDecided()
    remedy.reject(by=actor, reason=(reason or "")[:255], now=now)
    remedy.save()
    RemedyEvent.objects.create(remedy=remedy, kind="rejected", actor=actor, data={"reason": reason}, created_at=now)
    TicketEvent.objects.create(ticket_id=remedy.ticket_id, kind="remedy_rejected", actor=actor, created_at=now,
                               data={"remedy_id": remedy.pk, "reason": reason})
    return remedy


# --- breaker and policy -------------------------------------------------------------------


@transaction.atomic(durable=True)
def reset_breaker(*, actor, reason: str, budget_fen: int | None = None) -> BudgetDay:
    """A supervisor re-arms self-service for today, with a reason (recorded);
    while the spend is at the budget, today's budget must be raised too."""
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor re-arms the breaker.")
    reason = (reason or "").strip()
    if not reason or len(reason) > 255:
        raise InvalidInput("Give a reason (at most 255 characters).", field="reason")
    if budget_fen is not None and (isinstance(budget_fen, bool) or not isinstance(budget_fen, int) or budget_fen < 0):
        raise InvalidInput("budget_fen is a non-negative integer.", field="budget_fen")
    now = timezone.now()
    budget = lock_budget_day(timezone.localdate(now), budget_fen=get_policy().daily_budget_fen)
    if budget_fen is not None:
        budget.budget_fen = budget_fen
    if budget.spent_fen >= budget.budget_fen:
        raise BudgetStillExhausted()
    budget.breaker_open = False
    budget.breaker_opened_at = None
    budget.save(update_fields=["budget_fen", "breaker_open", "breaker_opened_at"])
    BreakerReset.objects.create(budget_day=budget, reset_by=actor, reason=reason, spent_fen=budget.spent_fen, created_at=now)
    publish_on_commit([CONSOLE], {"type": "breaker", "open": False, "date": budget.date.isoformat(),
                                  "spent_fen": budget.spent_fen, "budget_fen": budget.budget_fen})
    return budget


@transaction.atomic(durable=True)
def update_policy(*, actor, changes: dict, reason: str = "") -> Policy:
    """A supervisor changes the caps; every change is recorded (who, when, before → after)."""
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor changes the policy.")
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown policy fields: {', '.join(sorted(unknown))}.")
    for name, value in changes.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 10**12:
            raise InvalidInput(f"{name} is a non-negative integer.", field=name)
    if changes.get("coupon_fen") == 0:
        raise InvalidInput("coupon_fen is at least 1.", field="coupon_fen")
    get_policy()
    policy = Policy.objects.select_for_update().get(pk=1)
    diff = {name: [getattr(policy, name), value] for name, value in changes.items() if getattr(policy, name) != value}
    if not diff:
        return policy
    for name, (_, value) in diff.items():
        setattr(policy, name, value)
    policy.save()
    PolicyChange.objects.create(changed_by=actor, changes=diff, reason=(reason or "")[:255])
    if "daily_budget_fen" in diff:
        # today's budget follows the policy unless the day has passed it already
        BudgetDay.objects.filter(date=timezone.localdate()).update(budget_fen=policy.daily_budget_fen)
    return policy


# --- blacklist ---------------------------------------------------------------------------


@transaction.atomic(durable=True)
def add_to_blacklist(*, actor, kind: str, value: str, reason: str, window_days: int = 7) -> BlacklistEntry:
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor blacklists.")
    if kind not in BlacklistEntry.Kind.values:
        raise InvalidInput(f"kind is one of {', '.join(BlacklistEntry.Kind.values)}.", field="kind")
    value, reason = (value or "").strip(), (reason or "").strip()
    if not value or len(value) > 128:
        raise InvalidInput("value is 1–128 characters.", field="value")
    if not reason or len(reason) > 255:
        raise InvalidInput("Give a reason.", field="reason")
    if isinstance(window_days, bool) or not isinstance(window_days, int) or not 1 <= window_days <= 365:
        raise InvalidInput("window_days is 1–365.", field="window_days")
    now = timezone.now()
    return BlacklistEntry.objects.create(kind=kind, value=value, reason=reason, window_days=window_days,
                                         expires_at=now + timedelta(days=window_days), added_by=actor, created_at=now)


def blacklist_from_daily_counts(*, max_remedies: int = 3, max_tickets: int = 5, window_days: int = 3,
                                now: datetime | None = None) -> list[BlacklistEntry]:
    """Buyers with more than K remedies or tickets today go on the blacklist
    for ``window_days`` (idempotent: an active entry is not added twice)."""
    from django.contrib.auth import get_user_model

    now = now or timezone.now()
    today = timezone.localdate(now)
    heavy = set(BuyerCounter.objects.filter(date=today, count__gt=max_remedies).values_list("buyer_id", flat=True))
    start = timezone.make_aware(datetime.combine(today, datetime.min.time()))
    heavy |= set(
        Ticket.objects.filter(created_at__gte=start, buyer__isnull=False).values("buyer_id")
        .annotate(n=Count("id")).filter(n__gt=max_tickets).values_list("buyer_id", flat=True)
    )
    added = []
    users = get_user_model().objects.filter(pk__in=heavy).order_by("pk")
    for user in users:
        with transaction.atomic():
            if active_blacklist(kind=BlacklistEntry.Kind.ACCOUNT, value=user.username, now=now):
                continue
            added.append(BlacklistEntry.objects.create(
                kind=BlacklistEntry.Kind.ACCOUNT, value=user.username, window_days=window_days,
                reason=f"more than {max_remedies} remedies or {max_tickets} tickets on {today}",
                expires_at=now + timedelta(days=window_days), source=BlacklistEntry.Source.DAILY_COUNTS, created_at=now,
            ))
    return added


