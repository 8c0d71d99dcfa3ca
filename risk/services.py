"""Every write of ``risk``: the stolen-account detector, the supervisor's
actions on an account, the owner's verification, and the order system's check.

Who may do what (DESIGN.md, "Risk and incidents"): supervisors find stolen
accounts and act on them — flag, freeze, cancel pending orders in bulk (and
undo that), dismiss a hit. Unfreezing is the end of the owner's call to the
service desk: any agent may do it, but only on the strength of a recorded,
passed check of the registration details, so the control is the check, not
the agent's rank. Every action writes an ``AccountAction`` line with actor,
time and reason in the same transaction as its effect.

Locks: account (user row) → risk hit → verification (``risk/locks.py``).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts import roles
from accounts.models import LoginEvent, User
from compensation.models import BlacklistEntry
from core.errors import DomainError
from core.realtime import publish_on_commit
from core.locks import lock
from merchants import services as merchant_services
from merchants.models import Order, OrderCancellation
from risk import rules
from risk.errors import (
    AccountNotEligible,
    AccountNotFound,
    AlreadyFlagged,
    AlreadyFrozen,
    HitClosed,
    HitNotFound,
    InvalidInput,
    NotRestricted,
    PermissionDenied,
    VerificationFailed,
    VerificationRequired,
)
from risk.locks import lock_hit, lock_open_hits, lock_user, lock_verification
from risk.models import AccountAction, OwnerVerification, RiskHit
from tickets.events import CONSOLE

Status = User.AccountStatus
VERIFICATION_VALID_FOR = timedelta(minutes=30)
MAX_BULK_ORDERS = 500


def _reason(reason: str, *, required: bool = True) -> str:
    reason = (reason or "").strip()
    if (required and not reason) or len(reason) > 255:
        raise InvalidInput("Give a reason (at most 255 characters)." if required else "At most 255 characters.",
                           field="reason")
    return reason


def _require_supervisor(actor) -> None:
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor does this.")


def _require_staff(actor) -> None:
    if not roles.is_agent(actor):
        raise PermissionDenied("Staff only.")


def _buyer_account(user: User | None) -> User:
    if user is None:
        raise AccountNotFound()
    if not roles.is_buyer(user) or roles.is_agent(user) or roles.is_integration(user):
        raise AccountNotEligible()
    return user


def _close_open_hits(*, user_id: int, actor, now: datetime, note: str) -> RiskHit | None:
    """An action on the account answers its open hits: they become actioned."""
    hits = lock_open_hits(user_id)
    for hit in hits:
        hit.status = RiskHit.Status.ACTIONED
        hit.reviewed_by = actor
        hit.reviewed_at = now
        hit.review_note = note[:255]
        hit.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_note"])
    return hits[0] if hits else None


def _announce(account: User) -> None:
    publish_on_commit([CONSOLE], {"type": "risk.account", "user_id": account.pk,
                                  "account_status": account.account_status})


# --- the detector ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    dormant_days: int
    window_hours: int
    min_orders: int
    min_slots: int

    @classmethod
    def from_settings(cls) -> Thresholds:
        return cls(settings.RISK_DORMANT_DAYS, settings.RISK_BURST_WINDOW_HOURS, settings.RISK_BURST_MIN_ORDERS,
                   settings.RISK_BURST_MIN_SLOTS)

    def as_dict(self) -> dict:
        return {"dormant_days": self.dormant_days, "window_hours": self.window_hours,
                "min_orders": self.min_orders, "min_slots": self.min_slots}


def hour_slot(moment: datetime) -> int:
    """The hour of the day (local time) an order falls in: 0–23."""
    return timezone.localtime(moment).hour


def _evidence(*, account: User, burst: list[Order], thresholds: Thresholds) -> dict | None:
    """What the dormant-burst rule sees for one account whose window already
    holds enough orders, or None when the rule does not fire.

    Burst: at least ``min_orders`` orders in the window, in at least
    ``min_slots`` distinct hours of the day. Dormant: the account came back
    (its first login or order from one window before the burst's first order
    on — the thief signs in, then orders) after at least ``dormant_days``
    without a login or an order; with no activity ever, since it joined.
    """
    slots = sorted({hour_slot(order.placed_at) for order in burst})
    if len(burst) < thresholds.min_orders or len(slots) < thresholds.min_slots:
        return None
    first = burst[0].placed_at
    lookback = first - timedelta(hours=thresholds.window_hours)
    return_login = (LoginEvent.objects.filter(user=account, at__gte=lookback, at__lte=first)
                    .order_by("at").values_list("at", flat=True).first())
    reactivated = min(first, return_login) if return_login else first
    before = []
    last_login = (LoginEvent.objects.filter(user=account, at__lt=reactivated)
                  .order_by("-at").values_list("at", flat=True).first())
    if last_login:
        before.append((last_login, "login"))
    if account.last_login and account.last_login < reactivated:
        # sign-ins from before the login history existed
        before.append((account.last_login, "login"))
    last_order = (Order.objects.filter(buyer=account, placed_at__lt=reactivated)
                  .order_by("-placed_at").values_list("placed_at", flat=True).first())
    if last_order:
        before.append((last_order, "order"))
    last_seen, kind = max(before) if before else (account.date_joined, "joined")
    if reactivated - last_seen < timedelta(days=thresholds.dormant_days):
        return None
    return {
        "orders": [{"order_id": o.pk, "order_no": o.order_no, "placed_at": o.placed_at.isoformat(),
                    "hour": hour_slot(o.placed_at), "amount_fen": o.amount_fen} for o in burst],
        "slots": slots,
        "order_count": len(burst),
        "window_hours": thresholds.window_hours,
        "last_seen_at": last_seen.isoformat(),
        "last_seen_kind": kind,
        "reactivated_at": reactivated.isoformat(),
        "dormant_days": (reactivated - last_seen).days,
        "thresholds": thresholds.as_dict(),
    }


@dataclass
class DetectionResult:
    created: list[RiskHit] = field(default_factory=list)
    updated: list[RiskHit] = field(default_factory=list)


def detect_stolen_accounts(*, now: datetime | None = None, thresholds: Thresholds | None = None) -> DetectionResult:
    """Run the dormant-burst rule over the orders of the last window.

    Idempotent: an account keeps one open hit (a unique constraint), whose
    evidence is brought up to date when more orders came; a burst a
    supervisor already reviewed (a closed hit reaching into it) is not raised
    again. One transaction per account, so one account's failure or a
    parallel run loses nothing of the others. Periodic (``CELERY_BEAT_SCHEDULE``).
    """
    now = now or timezone.now()
    thresholds = thresholds or Thresholds.from_settings()
    since = now - timedelta(hours=thresholds.window_hours)
    window = Order.objects.filter(placed_at__gt=since, placed_at__lte=now)
    candidates = list(window.values("buyer_id").annotate(n=Count("id"))
                      .filter(n__gte=max(1, thresholds.min_orders)).order_by("buyer_id").values_list("buyer_id", flat=True))
    result = DetectionResult()
    if not candidates:
        return result
    bursts: dict[int, list[Order]] = {}
    for order in window.filter(buyer_id__in=candidates).only("pk", "order_no", "placed_at", "amount_fen", "buyer_id") \
            .order_by("buyer_id", "placed_at", "pk"):
        bursts.setdefault(order.buyer_id, []).append(order)
    accounts = {u.pk: u for u in User.objects.filter(pk__in=candidates)}
    for user_id in candidates:
        evidence = _evidence(account=accounts[user_id], burst=bursts[user_id], thresholds=thresholds)
        if evidence is None:
            continue
        first, last = bursts[user_id][0].placed_at, bursts[user_id][-1].placed_at
        try:
            with transaction.atomic():
                hit, created = _record_hit(user_id=user_id, evidence=evidence, first=first, last=last, now=now)
        except IntegrityError:
            continue  # a parallel run opened it first
        if hit is not None:
            (result.created if created else result.updated).append(hit)
    if result.created:
        publish_on_commit([CONSOLE], {"type": "risk.hits", "count": len(result.created)})
    return result


def _record_hit(*, user_id: int, evidence: dict, first: datetime, last: datetime,
                now: datetime) -> tuple[RiskHit | None, bool]:
    rule = RiskHit.Rule.DORMANT_BURST
    open_hit = lock(RiskHit.objects, "risk_hit").filter(user_id=user_id, rule=rule,
                                                          status=RiskHit.Status.OPEN).first()
    if open_hit is not None:
        if last <= open_hit.last_order_at:
            return None, False
        open_hit.evidence = evidence
        open_hit.first_order_at = min(open_hit.first_order_at, first)
        open_hit.last_order_at = last
        open_hit.save(update_fields=["evidence", "first_order_at", "last_order_at"])
        return open_hit, False
    if RiskHit.objects.filter(user_id=user_id, rule=rule, last_order_at__gte=first).exists():
        return None, False  # this burst was reviewed already
    hit = RiskHit.objects.create(user_id=user_id, rule=rule, evidence=evidence, first_order_at=first,
                                 last_order_at=last, detected_at=now)
    return hit, True


# --- a supervisor's actions on an account -------------------------------------------------


@transaction.atomic(durable=True)
def flag_account(*, actor, user_id: int, reason: str, now: datetime | None = None) -> User:
    """Mark a buyer's account suspect: new bookings are denied (``risk_check``)
    and their remedies go to approval (``buyer_flagged``)."""
    _require_supervisor(actor)
    reason = _reason(reason)
    now = now or timezone.now()
    account = _buyer_account(lock_user(user_id))
    if not rules.may_flag(status=account.account_status):
        if account.account_status == Status.FROZEN:
            raise AlreadyFrozen("The account is frozen, which already blocks it.")
        raise AlreadyFlagged()
    return _set_status(account=account, status=Status.FLAGGED, kind=AccountAction.Kind.FLAG, actor=actor,
                       reason=reason, now=now)


@transaction.atomic(durable=True)
def freeze_account(*, actor, user_id: int, reason: str, now: datetime | None = None) -> User:
    """Freeze a buyer's account until the owner verifies the registration details."""
    _require_supervisor(actor)
    reason = _reason(reason)
    now = now or timezone.now()
    account = _buyer_account(lock_user(user_id))
    if not rules.may_freeze(status=account.account_status):
        raise AlreadyFrozen()
    return _set_status(account=account, status=Status.FROZEN, kind=AccountAction.Kind.FREEZE, actor=actor,
                       reason=reason, now=now)


def _set_status(*, account: User, status: str, kind: str, actor, reason: str, now: datetime,
                data: dict | None = None) -> User:
    before = account.account_status
    account.account_status = status
    account.save(update_fields=["account_status"])
    hit = _close_open_hits(user_id=account.pk, actor=actor, now=now, note=reason)
    AccountAction.objects.create(user=account, kind=kind, actor=actor, hit=hit, reason=reason, created_at=now,
                                 data={"status": [before, status], **(data or {})})
    _announce(account)
    return account


@transaction.atomic(durable=True)
def dismiss_hit(*, actor, hit_id: int, reason: str, now: datetime | None = None) -> RiskHit:
    """A supervisor judges a hit harmless (the owner really did order)."""
    _require_supervisor(actor)
    reason = _reason(reason)
    now = now or timezone.now()
    user_id = RiskHit.objects.filter(pk=hit_id).values_list("user_id", flat=True).first()
    if user_id is None:
        raise HitNotFound()
    lock_user(user_id)
    hit = lock_hit(hit_id)
    if hit.status != RiskHit.Status.OPEN:
        raise HitClosed()
    hit.status = RiskHit.Status.DISMISSED
    hit.reviewed_by = actor
    hit.reviewed_at = now
    hit.review_note = reason
    hit.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_note"])
    AccountAction.objects.create(user_id=user_id, kind=AccountAction.Kind.DISMISS_HIT, actor=actor, hit=hit,
                                 reason=reason, created_at=now)
    return hit


# --- the owner's verification and the unfreeze ----------------------------------------------


def _digits(phone: str) -> str:
    digits = "".join(ch for ch in phone or "" if ch.isdigit())
    return digits[2:] if len(digits) == 13 and digits.startswith("86") else digits


@transaction.atomic(durable=True)
def verify_owner(*, actor, user_id: int, phone: str, email: str = "", id_last4_confirmed: bool = False,
                 note: str = "", now: datetime | None = None) -> OwnerVerification:
    """Record an agent's check of the caller's registration details. Failed
    checks are kept too: a caller who fails again and again is a signal."""
    _require_staff(actor)
    note = _reason(note, required=False)
    if not isinstance(id_last4_confirmed, bool):
        raise InvalidInput("id_last4_confirmed is true or false.", field="id_last4_confirmed")
    if not _digits(phone) or len(phone) > 32:
        raise InvalidInput("Give the phone number the caller states.", field="phone")
    if len(email or "") > 254:
        raise InvalidInput("The e-mail is at most 254 characters.", field="email")
    account = _buyer_account(User.objects.filter(pk=user_id).first())
    phone_matched = bool(account.phone) and _digits(phone) == _digits(account.phone)
    email_matched = bool(account.email and email) and email.strip().lower() == account.email.strip().lower()
    passed = phone_matched and (email_matched or id_last4_confirmed)
    return OwnerVerification.objects.create(
        user=account, checked_by=actor, phone_matched=phone_matched, email_matched=email_matched,
        id_last4_confirmed=id_last4_confirmed, note=note, created_at=now or timezone.now(),
        outcome=OwnerVerification.Outcome.PASSED if passed else OwnerVerification.Outcome.FAILED,
    )


@transaction.atomic(durable=True)
def unfreeze_account(*, actor, user_id: int, verification_id: int | None, note: str = "",
                     now: datetime | None = None) -> User:
    """Give a frozen (or flagged) account back to its owner, on the strength of
    a passed verification of this account recorded in the last 30 minutes and
    not used before (it is used up here). Without one: 422."""
    _require_staff(actor)
    note = _reason(note, required=False)
    now = now or timezone.now()
    account = _buyer_account(lock_user(user_id))
    if not rules.may_unfreeze(status=account.account_status):
        raise NotRestricted()
    valid_id = isinstance(verification_id, int) and not isinstance(verification_id, bool)
    check = lock_verification(verification_id, account.pk) if valid_id else None
    if check is None:
        raise VerificationRequired()
    if check.outcome != OwnerVerification.Outcome.PASSED:
        raise VerificationFailed(verification_id=check.pk)
    if check.used_at is not None or now - check.created_at > VERIFICATION_VALID_FOR:
        raise VerificationRequired("That verification is used up or too old; check the owner again.")
    check.used_at = now
    check.save(update_fields=["used_at"])
    return _set_status(account=account, status=Status.ACTIVE, kind=AccountAction.Kind.UNFREEZE, actor=actor,
                       reason=note or "owner verified", now=now, data={"verification_id": check.pk})


# --- cancelling an account's pending orders in bulk, and the undo --------------------------


@dataclass
class BulkOrdersResult:
    done: list[Order] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (order id, error code)
    undo_until: datetime | None = None


def pending_orders_of(*, user_id: int) -> list[Order]:
    """The account's paid, unshipped orders: what a bulk cancel would cancel."""
    return list(Order.objects.filter(buyer_id=user_id, status=Order.Status.PAID).select_related("merchant")
                .order_by("placed_at", "pk")[:MAX_BULK_ORDERS])


def _orders_of(user_id: int, order_ids) -> dict[int, Order]:
    if not isinstance(order_ids, list | tuple) or not order_ids or len(order_ids) > MAX_BULK_ORDERS \
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in order_ids):
        raise InvalidInput(f"order_ids is a list of 1–{MAX_BULK_ORDERS} order ids.", field="order_ids")
    return {o.pk: o for o in Order.objects.filter(buyer_id=user_id, pk__in=order_ids)}


def cancel_pending_orders(*, actor, user_id: int, reason: str, order_ids: list[int] | None = None,
                          now: datetime | None = None) -> BulkOrdersResult:
    """Cancel the account's pending (paid, unshipped) orders — those in
    ``order_ids``, the ones the supervisor confirmed, or all of them.

    Not one transaction on purpose: each order is cancelled in its own
    (``merchants.services.cancel_order``: order → merchant account), so an
    order that ships meanwhile is skipped with its code instead of rolling
    back the others, and each can be undone on its own. The audit line and
    the hit's review commit after them.
    """
    _require_supervisor(actor)
    reason = _reason(reason)
    now = now or timezone.now()
    account = _buyer_account(User.objects.filter(pk=user_id).first())
    if order_ids is None:
        targets = pending_orders_of(user_id=account.pk)
        wanted = [o.pk for o in targets]
    else:
        by_id = _orders_of(account.pk, order_ids)
        wanted = list(dict.fromkeys(order_ids))
    result = BulkOrdersResult()
    for order_id in wanted:
        if order_ids is not None and order_id not in by_id:
            result.skipped.append((order_id, "not_found"))
            continue
        try:
            cancellation = merchant_services.cancel_order(actor=actor, order_id=order_id, reason=reason, now=now)
        except DomainError as refused:
            result.skipped.append((order_id, refused.code))
            continue
        result.done.append(cancellation.order)
        result.undo_until = cancellation.undo_until
    _record_bulk(account=account, kind=AccountAction.Kind.CANCEL_ORDERS, actor=actor, reason=reason, now=now,
                 result=result, close_hits=True)
    return result


def restore_cancelled_orders(*, actor, user_id: int, order_ids: list[int],
                             now: datetime | None = None) -> BulkOrdersResult:
    """Undo a bulk cancel, order by order, within the undo window."""
    _require_supervisor(actor)
    now = now or timezone.now()
    account = _buyer_account(User.objects.filter(pk=user_id).first())
    by_id = _orders_of(account.pk, order_ids)
    result = BulkOrdersResult()
    for order_id in dict.fromkeys(order_ids):
        if order_id not in by_id:
            result.skipped.append((order_id, "not_found"))
            continue
        try:
            result.done.append(merchant_services.restore_order(actor=actor, order_id=order_id, now=now))
        except DomainError as refused:
            result.skipped.append((order_id, refused.code))
    _record_bulk(account=account, kind=AccountAction.Kind.RESTORE_ORDERS, actor=actor, reason="undo", now=now,
                 result=result, close_hits=False)
    return result


@transaction.atomic(durable=True)
def _record_bulk(*, account: User, kind: str, actor, reason: str, now: datetime, result: BulkOrdersResult,
                 close_hits: bool) -> None:
    lock_user(account.pk)
    hit = _close_open_hits(user_id=account.pk, actor=actor, now=now, note=reason) if close_hits and result.done else None
    AccountAction.objects.create(
        user=account, kind=kind, actor=actor, hit=hit, reason=reason, created_at=now,
        data={"order_ids": [o.pk for o in result.done], "skipped": [list(s) for s in result.skipped],
              **({"undo_until": result.undo_until.isoformat()} if result.undo_until else {})},
    )


def undoable_cancellations(*, user_id: int, now: datetime | None = None) -> list[OrderCancellation]:
    """The account's cancellations that can still be undone, oldest first."""
    now = now or timezone.now()
    return list(OrderCancellation.objects.filter(order__buyer_id=user_id, restored_at__isnull=True,
                                                 order__status=Order.Status.CANCELLED, undo_until__gte=now)
                .select_related("order").order_by("cancelled_at", "pk"))


# --- the order system's question ---------------------------------------------------------


@dataclass(frozen=True)
class RiskDecision:
    decision: str  # "allow" or "deny"
    reasons: list[str]


def _clean_ip(ip: str) -> str:
    try:
        return str(ipaddress.ip_address(ip))
    except ValueError:
        raise InvalidInput("ip is an IPv4 or IPv6 address.", field="ip") from None


def risk_check(*, actor, account: str = "", ip: str = "", device: str = "",
               now: datetime | None = None) -> RiskDecision:
    """May this booking go ahead? Deny when the account (its username) is
    frozen or flagged, or when an active blacklist entry matches the account,
    the IP or the device; otherwise allow. The platform shows a denial as
    "system busy".

    An account the workbench does not know is judged by the blacklist alone
    (no reason of its own): the order system may know accounts before they
    reach here, and failing closed on a lookup miss would turn away real
    buyers. Two queries, whatever is asked. Only the order system's
    integration token and staff may ask.
    """
    if not (roles.is_integration(actor) or roles.is_agent(actor)):
        raise PermissionDenied("Only the order system and staff ask the risk check.")
    account, ip, device = (account or "").strip(), (ip or "").strip(), (device or "").strip()
    if not (account or ip or device):
        raise InvalidInput("Give account, ip or device.")
    if len(account) > 150:
        raise InvalidInput("account is at most 150 characters.", field="account")
    if len(device) > 128:
        raise InvalidInput("device is at most 128 characters.", field="device")
    ip = _clean_ip(ip) if ip else ""
    now = now or timezone.now()
    reasons = []
    if account:
        status = User.objects.filter(username=account).values_list("account_status", flat=True).first()
        if status == Status.FROZEN:
            reasons.append("account_frozen")
        elif status == Status.FLAGGED:
            reasons.append("account_flagged")
    wanted = Q()
    for kind, value in ((BlacklistEntry.Kind.ACCOUNT, account), (BlacklistEntry.Kind.IP, ip),
                        (BlacklistEntry.Kind.DEVICE, device)):
        if value:
            wanted |= Q(kind=kind, value=value)
    listed = set(BlacklistEntry.objects.filter(wanted, expires_at__gt=now).values_list("kind", flat=True))
    reasons += [f"{kind}_blacklisted" for kind in ("account", "ip", "device") if kind in listed]
    return RiskDecision("deny" if reasons else "allow", reasons)
