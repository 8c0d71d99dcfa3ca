"""Remedies: apply within the caps, or route to a supervisor; approve, reject.

A remedy is one transaction in which quota, buyer counter, budget, the remedy,
its coupon, refund or resend, the ledger and the ticket's timeline and notice
commit together or not at all. No row is held platform-wide while it runs:

1. the ticket is locked (remedies on one ticket take turns);
2. one query reads the policy in force and what is used of it; the rules
   (``compensation/rules.py``) decide: refused (422), approval (202) or
   self-service;
3. self-service takes the agent's quota and the buyer's daily slot by
   conditional updates (per person), carries the remedy out (the ledger,
   then a refund's merchant account, the rows other remedies meet on, at
   its end), writes the idempotency record, and spends the day's budget by
   one conditional update as the last statement before the commit; on
   PostgreSQL the writes whose keys nothing reads go to the server with the
   next statement that reads (``core.rows.sent_together``), the remedy's
   own insert among them (its key comes with the ticket's lock), so a
   coupon's 15 statements take 4 round trips (a refund or a resend 6);
4. a conditional update that fails means another request took the last of
   a cap since step 2: the transaction rolls back and runs again once, and
   the fresh read routes it to approval. N parallel requests against a cap of
   K therefore grant exactly min(N, K) and the budget is never passed.

The ``Idempotency-Key`` is required (400 without it). The key's record is
written in the same transaction as the effect (unique ``(scope, key)``): a
retry with the same key and body replays the first answer, another body is a
409, and two requests racing with one key leave one effect.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts import roles
from accounts.models import User
from compensation import counters, ledger, rules
from compensation.errors import (
    AmountInvalid,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    OwnRequest,
    PermissionDenied,
    RemedyDecided,
)
from compensation.models import Coupon, IdempotencyRecord, Remedy, RemedyEvent
from compensation.rules import Caps
from compensation.services.policy import get_policy, period_of
from core.errors import Conflict
from core.idempotency import request_hash, require_idempotency_key
from core.money import format_fen
from core.realtime import publish_on_commit
from core.locks import lock, taking
from core.rows import (Columns, cache_related, column, for_update, insert, next_key_sql, prepared_cursor,
                       sent_together, split, table)
from merchants import services as merchant_services
from merchants.models import Movement, Order
from tickets.events import CONSOLE
from tickets.models import Message, Ticket, TicketEvent
from tickets.rules import can_view_ticket, viewer_of
from tickets.selectors import get_ticket_for
from tickets.services.conversation import append_message

MAX_CAP_RACES = 2


class _CapTaken(Exception):
    """A conditional update found its cap used up since the snapshot."""


@dataclass(frozen=True)
class RemedyResult:
    status_code: int
    body: dict
    remedy_id: int
    replayed: bool = False



def _replay(*, scope: str, key: str, digest: str) -> RemedyResult | None:
    record = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
    if record is None:
        return None
    if record.request_hash != digest:
        raise IdempotencyConflict()
    return RemedyResult(record.status_code, record.response, record.response["id"], replayed=True)


def _idempotent(*, scope: str, key: str, digest: str, run, checked_inside: bool = False) -> RemedyResult:
    """Replay a key already answered; else run (retrying a lost cap race
    once) and let a racing request with the same key replay the winner.
    ``checked_inside``: ``run`` looks for the key itself, in its first query."""
    if not checked_inside and (replayed := _replay(scope=scope, key=key, digest=digest)):
        return replayed
    for attempt in range(MAX_CAP_RACES + 1):
        try:
            return run()
        except _CapTaken:
            if attempt == MAX_CAP_RACES:
                raise Conflict("The caps changed while this was decided; try again.") from None
        except IntegrityError:
            # another request with the same key committed first: answer as it did
            if replayed := _replay(scope=scope, key=key, digest=digest):
                return replayed
            raise
    raise AssertionError("unreachable")


def _record(*, scope: str, key: str, digest: str, status_code: int, body: dict, now: datetime) -> None:
    insert(IdempotencyRecord(scope=scope, key=key, request_hash=digest, status_code=status_code, response=body,
                             created_at=now))


def _lock_ticket(*, actor, ticket_id: int, scope: str, key: str) -> Ticket | None:
    """The ticket, locked, with its buyer and order, and whether the key was
    answered already (``key_used``), in one statement written once per
    process (building it through the ORM cost a remedy 1.4 ms of CPU; the
    database answers in a tenth of that). None: not visible (``can_view``,
    the rule every page and endpoint applies)."""
    taking("ticket")
    with prepared_cursor() as cursor:
        cursor.execute(_lock_ticket_sql(connection.vendor), {"ticket": ticket_id, "scope": scope, "key": key})
        row = cursor.fetchone()
    if row is None:
        return None
    ticket, buyer, order, key_used, *next_remedy = split(row, _TICKET, _BUYER, _ORDER)
    if not can_view_ticket(viewer_of(actor), ticket):
        return None
    cache_related(ticket, "buyer", buyer)
    cache_related(ticket, "order", order)
    ticket.key_used = bool(key_used)
    ticket.next_remedy_id = next_remedy[0] if next_remedy else None
    return ticket


_TICKET, _BUYER, _ORDER = Columns(Ticket, "t"), Columns(User, "b"), Columns(Order, "o")


@functools.cache
def _lock_ticket_sql(vendor: str) -> str:
    key_used = (f"EXISTS (SELECT 1 FROM {table(IdempotencyRecord)} i WHERE {column(IdempotencyRecord, 'scope', 'i')} "
                f"= %(scope)s AND {column(IdempotencyRecord, 'key', 'i')} = %(key)s)")
    # on PostgreSQL the remedy's key comes with the lock: its INSERT then waits for no answer (held with the rest)
    next_remedy = f", {next_key}" if (next_key := next_key_sql(Remedy)) else ""
    return (f"SELECT {_TICKET.sql()}, {_BUYER.sql()}, {_ORDER.sql()}, {key_used}{next_remedy} "
            f"FROM {table(Ticket)} t "
            f"LEFT JOIN {table(User)} b ON {column(User, 'id', 'b')} = {column(Ticket, 'buyer', 't')} "
            f"LEFT JOIN {table(Order)} o ON {column(Order, 'id', 'o')} = {column(Ticket, 'order', 't')} "
            f"WHERE {column(Ticket, 'id', 't')} = %(ticket)s{for_update(of='t')}")


def _caps(*, actor, ticket: Ticket, now: datetime) -> Caps:
    # the buyer's account, or the address or device of their latest login, on the blacklist refuses
    return counters.caps_snapshot(
        agent_id=actor.pk, buyer_id=ticket.buyer_id, buyer_username=ticket.buyer.username if ticket.buyer_id else "",
        day=timezone.localdate(now), period=period_of(now), now=now,
    )


def refusal_for(*, ticket: Ticket, kind: str, caps: Caps, amount_fen=None):
    """The DomainError ``apply_remedy`` would refuse with (422), or None: the
    panel shows it before any click."""
    refused = rules.ineligibility(ticket=ticket, kind=kind, blacklisted=caps.blacklisted)
    if refused is not None:
        return refused
    try:
        rules.amount_for(kind=kind, amount_fen=amount_fen,
                         refundable_fen=ticket.order.refundable_fen if ticket.order_id else 0, caps=caps)
    except AmountInvalid as invalid:
        return invalid
    return None


# --- apply ---------------------------------------------------------------------------------


def apply_remedy(*, actor, ticket_id: int, kind: str, reason: str, amount_fen: int | None = None,
                 with_coupon: bool = False, idempotency_key: str | None) -> RemedyResult:
    """Grant a remedy within every cap (201, executed), route it to a
    supervisor when a cap is hit (202, pending_approval, with the reasons), or
    refuse it (422). The same key with the same body replays the first answer;
    with another body it is a 409; without a key it is a 400."""
    if not roles.is_agent(actor):
        raise PermissionDenied("Only staff apply remedies.")
    key = require_idempotency_key(idempotency_key)
    if kind not in Remedy.Kind.values:
        raise InvalidInput(f"kind is one of {', '.join(Remedy.Kind.values)}.", field="kind")
    reason = (reason or "").strip()
    if not reason or len(reason) > 255:
        raise InvalidInput("Give a reason (at most 255 characters).", field="reason")
    if with_coupon and kind == Remedy.Kind.COUPON:
        raise InvalidInput("with_coupon goes with a refund or a resend.", field="with_coupon")
    scope = f"remedy:{actor.pk}"
    digest = request_hash({"ticket_id": ticket_id, "kind": kind, "amount_fen": amount_fen, "reason": reason,
                           "with_coupon": bool(with_coupon)})
    return _idempotent(scope=scope, key=key, digest=digest, checked_inside=True, run=lambda: _apply(
        actor=actor, ticket_id=ticket_id, kind=kind, reason=reason, amount_fen=amount_fen,
        with_coupon=bool(with_coupon), scope=scope, key=key, digest=digest))


@transaction.atomic(durable=True)
def _apply(*, actor, ticket_id: int, kind: str, reason: str, amount_fen, with_coupon: bool, scope: str, key: str,
           digest: str) -> RemedyResult:
    now = timezone.now()
    today = timezone.localdate(now)
    ticket = _lock_ticket(actor=actor, ticket_id=ticket_id, scope=scope, key=key)
    if ticket is None or ticket.key_used:
        # a retry answered before (even if the ticket has since left the actor's sight)
        if replayed := _replay(scope=scope, key=key, digest=digest):
            return replayed
        if ticket is None:
            get_ticket_for(user=actor, ticket_id=ticket_id)  # raises the 404 that reveals nothing
    caps = _caps(actor=actor, ticket=ticket, now=now)
    refused = refusal_for(ticket=ticket, kind=kind, caps=caps, amount_fen=amount_fen)
    if refused is not None:
        raise refused
    refundable = ticket.order.refundable_fen if ticket.order_id else 0
    amount = rules.amount_for(kind=kind, amount_fen=amount_fen, refundable_fen=refundable, caps=caps)
    coupon_fen = caps.coupon_fen if with_coupon else 0
    cost = rules.remedy_cost(kind=kind, amount_fen=amount, with_coupon=with_coupon, coupon_fen=coupon_fen)
    reasons = rules.approval_reasons(
        caps=caps, kind=kind, amount_fen=amount, cost_fen=cost,
        order_amount_fen=ticket.order.amount_fen if ticket.order_id else None,
        buyer_active=ticket.buyer.account_status == ticket.buyer.AccountStatus.ACTIVE,
    )
    remedy = Remedy(pk=ticket.next_remedy_id, ticket=ticket, order=ticket.order, buyer=ticket.buyer,
                    requested_by=actor, kind=kind, amount_fen=amount, with_coupon=with_coupon, coupon_fen=coupon_fen,
                    reason=reason, created_at=now)
    requested = {"kind": kind, "amount_fen": amount, "with_coupon": with_coupon}
    if reasons:
        remedy.route_to_approval(reasons=reasons)
        insert(remedy)
        # nothing below reads the keys of what it writes: one round trip at the end (or with the breaker's read)
        with sent_together(RemedyEvent, TicketEvent, IdempotencyRecord):
            insert(
                RemedyEvent(remedy=remedy, kind="requested", actor=actor, created_at=now, data=requested),
                RemedyEvent(remedy=remedy, kind="pending_approval", actor=actor, data={"reasons": reasons},
                            created_at=now),
            )
            insert(TicketEvent(ticket=ticket, kind="remedy_requested", actor=actor, created_at=now,
                               data={"remedy_id": remedy.pk, "kind": kind, "amount_fen": amount, "reasons": reasons}))
            if rules.REASON_BREAKER in reasons and not caps.breaker_open:
                opened = counters.open_breaker_if_over(day=today, cost_fen=cost, now=now,
                                                       default_budget_fen=caps.daily_budget_fen)
                if opened is not None:
                    _publish_budget(opened)
            publish_on_commit([CONSOLE], {"type": "remedy.pending", "remedy_id": remedy.pk, "ticket_id": ticket.pk,
                                          "reasons": reasons})
            body = remedy_body(remedy)
            _record(scope=scope, key=key, digest=digest, status_code=202, body=body, now=now)
        return RemedyResult(202, body, remedy.pk)
    # From here nothing reads the keys of the rows a remedy carried out writes (the remedy's own came with the
    # ticket's lock): on PostgreSQL each write goes to the server with the next statement that needs an answer
    # (a resend's credit policy, a refund's order, the ledger's head, the day's budget). The quota and the
    # buyer's slot are taken first, their answers read at the end (a cap taken meanwhile rolls everything back).
    with sent_together(Remedy, *_CARRIED_OUT):
        quota = counters.take_quota(agent_id=actor.pk, period=period_of(now), limit=caps.agent_monthly_quota)
        slot = counters.take_buyer_slot(buyer_id=ticket.buyer_id, day=today, cap=caps.buyer_daily_cap)
        remedy.auto_approve()
        remedy.execute(now=now)
        insert(remedy)
        _carry_out(remedy=remedy, ticket=ticket, actor=actor, caps=caps, now=now, events=[
            RemedyEvent(remedy=remedy, kind="requested", actor=actor, created_at=now, data=requested)])
        body = remedy_body(remedy)
        _record(scope=scope, key=key, digest=digest, status_code=201, body=body, now=now)
        # the day's budget last: the one row every remedy shares is held only from here to the commit
        spent = counters.spend_budget(day=today, cost_fen=cost, now=now, default_budget_fen=caps.daily_budget_fen)
    if quota.row is None or slot.row is None or spent is None:
        raise _CapTaken()
    _publish_budget(spent)
    return RemedyResult(201, body, remedy.pk)


# what carrying a remedy out writes and nothing reads the keys of before the commit (``_carry_out``, the
# idempotency record): held inside ``sent_together`` and sent with the next statement that reads
_CARRIED_OUT = (Coupon, TicketEvent, Ticket, Message, RemedyEvent, Order, Movement, IdempotencyRecord)


def _new_coupon_code() -> str:
    return "CP" + secrets.token_hex(6).upper()


def _carry_out(*, remedy: Remedy, ticket: Ticket, actor, caps: Caps, now: datetime,
               events: list[RemedyEvent]) -> None:
    """Refund / resend / coupon, the ticket's timeline, the buyer's notice,
    the remedy's ``events`` with its executed one, and the ledger, under the
    caller's locks. The rows other remedies share come last, so they are held
    only from there to the commit: the ledger chain's head, then a refund's
    merchant account (every refund and payment of that merchant meets there;
    the day's budget, after it, is the caller's)."""
    told = []
    coupon_codes = []
    coupon_lines: list[tuple[str, int, str]] = []
    if remedy.kind == Remedy.Kind.REFUND:
        told.append(f"退款 {format_fen(remedy.amount_fen)} 已原路退回")
    elif remedy.kind == Remedy.Kind.RESEND:
        task = merchant_services.create_resend_task(order=remedy.order, ticket_id=ticket.pk, reason=remedy.reason, now=now)
        told.append(f"已要求商家在 {timezone.localtime(task.deadline_at):%m月%d日 %H:%M} 前为您补发")
    coupon_value = remedy.amount_fen if remedy.kind == Remedy.Kind.COUPON else remedy.coupon_fen
    if coupon_value:
        coupon = Coupon(
            code=_new_coupon_code(), buyer_id=remedy.buyer_id, remedy=remedy, value_fen=coupon_value,
            threshold_fen=0, issued_at=now, expires_at=now + timedelta(days=caps.coupon_days),
        )
        insert(coupon)
        coupon_codes.append(coupon.code)
        coupon_lines += [("platform:compensation", -coupon_value, "coupon"),
                         (f"buyer_coupons:{remedy.buyer_id}", coupon_value, coupon.code)]
        told.append(f"{format_fen(coupon_value)} 无门槛优惠券（{coupon.code}）已发放到您的账户")
    insert(TicketEvent(ticket=ticket, kind="remedy_executed", actor=actor, created_at=now,
                       data={"remedy_id": remedy.pk, "kind": remedy.kind, "amount_fen": remedy.amount_fen,
                             "with_coupon": remedy.with_coupon, "coupons": coupon_codes,
                             "self_service": remedy.self_service}))
    append_message(ticket=ticket, author=None, body="，".join(told) + "。", internal=False, now=now, notice="remedy_applied")
    insert(*events, RemedyEvent(remedy=remedy, kind="executed", actor=actor, created_at=now,
                                data={"cost_fen": remedy.cost_fen, "coupons": coupon_codes}))
    refund_lines: list[tuple[str, int, str]] = []
    if remedy.kind == Remedy.Kind.REFUND:
        order, source = merchant_services.lock_refundable(order_id=remedy.order_id, amount_fen=remedy.amount_fen)
        source_account = {"escrow": f"escrow:order:{order.pk}", "hold": f"merchant:{order.merchant_id}",
                          "balance": f"merchant:{order.merchant_id}"}[source]
        refund_lines += [(source_account, -remedy.amount_fen, f"refund ({source})"),
                         (f"buyer:{remedy.buyer_id}", remedy.amount_fen, "refund")]
    if refund_lines or coupon_lines:
        ledger.post(remedy=remedy, lines=refund_lines + coupon_lines, now=now)
    if remedy.kind == Remedy.Kind.REFUND:
        merchant_services.refund_order(order=order, source=source, amount_fen=remedy.amount_fen, now=now)


def _publish_budget(state: counters.BudgetState) -> None:
    payload = {"date": state.date.isoformat(), "spent_fen": state.spent_fen, "budget_fen": state.budget_fen}
    publish_on_commit([CONSOLE], {"type": "budget", **payload, "breaker_open": state.breaker_open})
    if state.breaker_opened:
        publish_on_commit([CONSOLE], {"type": "breaker", "open": True, **payload})


def remedy_body(remedy: Remedy) -> dict:
    body = {"id": remedy.pk, "status": remedy.status, "kind": remedy.kind, "amount_fen": remedy.amount_fen,
            "with_coupon": remedy.with_coupon, "coupon_fen": remedy.coupon_fen, "ticket_id": remedy.ticket_id}
    if remedy.status == Remedy.Status.PENDING_APPROVAL:
        body["reasons"] = list(remedy.approval_reasons)
    return body


# --- approvals -------------------------------------------------------------------------------


def _decidable(*, actor, remedy_id: int) -> Remedy:
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor decides remedies.")
    remedy = Remedy.objects.filter(pk=remedy_id).first()
    if remedy is None:
        raise NotFound("Remedy not found.")
    if remedy.requested_by_id == actor.pk:
        raise OwnRequest()
    return remedy


def _decide(*, actor, remedy_id: int, reason: str, idempotency_key: str | None, verdict: str) -> Remedy:
    key = require_idempotency_key(idempotency_key)
    scope = f"decision:{actor.pk}"
    reason = (reason or "")[:255]
    digest = request_hash({"remedy_id": remedy_id, "verdict": verdict, "reason": reason})
    run = _approve if verdict == "approve" else _reject
    result = _idempotent(scope=scope, key=key, digest=digest, run=lambda: run(
        actor=actor, remedy_id=remedy_id, reason=reason, scope=scope, key=key, digest=digest))
    return Remedy.objects.get(pk=result.remedy_id)


def approve_remedy(*, actor, remedy_id: int, reason: str = "", idempotency_key: str | None) -> Remedy:
    """A supervisor approves; the remedy executes in the same transaction and
    spends the budget even past it (the supervisor decided; the breaker opens)."""
    return _decide(actor=actor, remedy_id=remedy_id, reason=reason, idempotency_key=idempotency_key, verdict="approve")


def reject_remedy(*, actor, remedy_id: int, reason: str = "", idempotency_key: str | None) -> Remedy:
    return _decide(actor=actor, remedy_id=remedy_id, reason=reason, idempotency_key=idempotency_key, verdict="reject")


@transaction.atomic(durable=True)
def _approve(*, actor, remedy_id: int, reason: str, scope: str, key: str, digest: str) -> RemedyResult:
    remedy = _decidable(actor=actor, remedy_id=remedy_id)
    now = timezone.now()
    ticket = lock(Ticket.objects, "ticket", of=("self",)).select_related("buyer", "order").get(pk=remedy.ticket_id)
    remedy = lock(Remedy.objects, "remedy").get(pk=remedy_id)
    if remedy.status != Remedy.Status.PENDING_APPROVAL:
        raise RemedyDecided()
    caps = _caps(actor=actor, ticket=ticket, now=now)
    refused = rules.ineligibility(ticket=ticket, kind=remedy.kind, blacklisted=caps.blacklisted)
    if refused is not None:
        raise refused
    if remedy.kind == Remedy.Kind.REFUND and remedy.amount_fen > remedy.order.refundable_fen:
        raise AmountInvalid("Less is left to refund on the order than this remedy asks.")
    remedy.approve(by=actor, reason=reason, now=now)
    with sent_together(*_CARRIED_OUT):  # as a self-service remedy's, after the remedy's own update
        counters.take_buyer_slot(buyer_id=remedy.buyer_id, day=timezone.localdate(now), cap=None)  # never refused
        remedy.execute(now=now)
        remedy.save()
        _carry_out(remedy=remedy, ticket=ticket, actor=actor, caps=caps, now=now, events=[
            RemedyEvent(remedy=remedy, kind="approved", actor=actor, data={"reason": reason}, created_at=now)])
        spent = counters.spend_budget(day=timezone.localdate(now), cost_fen=remedy.cost_fen, now=now,
                                      default_budget_fen=caps.daily_budget_fen, approved=True)
        _record(scope=scope, key=key, digest=digest, status_code=200, body={"id": remedy.pk}, now=now)
    _publish_budget(spent)
    return RemedyResult(200, {"id": remedy.pk}, remedy.pk)


@transaction.atomic(durable=True)
def _reject(*, actor, remedy_id: int, reason: str, scope: str, key: str, digest: str) -> RemedyResult:
    _decidable(actor=actor, remedy_id=remedy_id)
    now = timezone.now()
    remedy = lock(Remedy.objects, "remedy").get(pk=remedy_id)
    if remedy.status != Remedy.Status.PENDING_APPROVAL:
        raise RemedyDecided()
    remedy.reject(by=actor, reason=reason, now=now)
    remedy.save()
    RemedyEvent.objects.create(remedy=remedy, kind="rejected", actor=actor, data={"reason": reason}, created_at=now)
    TicketEvent.objects.create(ticket_id=remedy.ticket_id, kind="remedy_rejected", actor=actor, created_at=now,
                               data={"remedy_id": remedy.pk, "reason": reason})
    _record(scope=scope, key=key, digest=digest, status_code=200, body={"id": remedy.pk}, now=now)
    return RemedyResult(200, {"id": remedy.pk}, remedy.pk)


def refusals_for(*, tickets: list[Ticket], kind: str, amount_fen=None, now: datetime | None = None) -> dict:
    """``refusal_for`` over many tickets (a bulk job's preview) in two queries:
    the policy and the blacklist. ``tickets`` carry their buyer and order."""
    from dataclasses import replace

    from compensation.models import BlacklistEntry

    now = now or timezone.now()
    policy = get_policy()
    base = Caps(value_cap_fen=policy.value_cap_fen, coupon_fen=policy.coupon_fen, coupon_max_fen=policy.coupon_max_fen,
                coupon_days=policy.coupon_days, agent_monthly_quota=policy.agent_monthly_quota,
                buyer_daily_cap=policy.buyer_daily_cap, daily_budget_fen=policy.daily_budget_fen, quota_used=0,
                buyer_count=0, spent_fen=0, budget_fen=policy.daily_budget_fen, breaker_open=False, blacklisted=False)
    usernames = {t.buyer.username for t in tickets if t.buyer_id}
    listed = set(BlacklistEntry.objects.filter(kind=BlacklistEntry.Kind.ACCOUNT, value__in=usernames,
                                               expires_at__gt=now).values_list("value", flat=True))
    return {t.pk: refusal_for(ticket=t, kind=kind, amount_fen=amount_fen,
                              caps=replace(base, blacklisted=bool(t.buyer_id) and t.buyer.username in listed))
            for t in tickets}


def policy_caps(*, actor, ticket: Ticket, now: datetime | None = None) -> Caps:
    """The caps as a remedy on ``ticket`` by ``actor`` would read them now (the panel)."""
    return _caps(actor=actor, ticket=ticket, now=now or timezone.now())


__all__ = ["RemedyResult", "apply_remedy", "approve_remedy", "get_policy", "policy_caps", "refusal_for",
           "refusals_for", "reject_remedy", "remedy_body", "request_hash"]
