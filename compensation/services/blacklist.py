"""The blacklist: by account, IP or device, with a window and an expiry."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts import roles
from compensation.errors import InvalidInput, PermissionDenied
from compensation.models import BlacklistEntry, BuyerCounter
from tickets.models import Ticket


def active_blacklist(*, kind: str, value: str, now: datetime) -> BlacklistEntry | None:
    return BlacklistEntry.objects.filter(kind=kind, value=value, expires_at__gt=now).order_by("-expires_at").first()


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


