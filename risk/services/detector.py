"""The stolen-account detector: the dormant-burst rule over the last window's
orders, one open hit per account (periodic, ``CELERY_BEAT_SCHEDULE``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.utils import timezone

from accounts.models import LoginEvent, User
from core.locks import lock
from core.realtime import publish_on_commit
from merchants.models import Order
from risk.models import RiskHit
from tickets.events import CONSOLE


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
