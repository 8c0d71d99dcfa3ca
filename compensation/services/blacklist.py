"""The blacklist: by account, IP or device, with a window and an expiry; the
automatic rule over a rolling window of counts; and the guard every door of
the workbench asks (``core.doors``, registered in ``compensation.apps``)."""

from __future__ import annotations

import functools
from collections import defaultdict
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Sum
from django.utils import timezone
from django.utils.translation import gettext

from accounts import roles
from accounts.models import LoginEvent, User
from compensation.errors import InvalidInput, PermissionDenied
from compensation.models import BlacklistEntry, BuyerCounter
from compensation.services.policy import get_policy
from core.errors import Blacklisted
from core.rows import Columns, column, prepared_cursor, table
from tickets.models import Ticket

Kind = BlacklistEntry.Kind


def active_blacklist(*, kind: str, value: str, now: datetime) -> BlacklistEntry | None:
    return BlacklistEntry.objects.filter(kind=kind, value=value, expires_at__gt=now).order_by("-expires_at").first()


def _wanted(account: str = "", ip: str | None = None, device: str = "") -> list[tuple[str, str]]:
    return [(kind, value) for kind, value in ((Kind.ACCOUNT, account), (Kind.IP, ip), (Kind.DEVICE, device)) if value]


def _listed_pairs(pairs, *, now: datetime | None) -> dict[tuple[str, str], datetime]:
    """The active entries among ``(kind, value)`` pairs, each with its latest
    expiry. One statement however many pairs, written once per process and
    number of pairs: every door asks (a login, every ticket opened, every
    chat batch), and the ORM spent more CPU building its ``OR`` than the
    database spent answering it, most often with nothing."""
    pairs = sorted(set(pairs))
    if not pairs:
        return {}
    params = [connection.ops.adapt_datetimefield_value(now or timezone.now())]
    for kind, value in pairs:
        params += [kind, value]
    with prepared_cursor() as cursor:
        cursor.execute(_listed_sql(connection.vendor, len(pairs)), params)
        rows = cursor.fetchall()
    found: dict[tuple[str, str], datetime] = {}
    for row in rows:
        entry = _ENTRY.build(row)
        key = (entry.kind, entry.value)
        found[key] = max(entry.expires_at, found.get(key, entry.expires_at))
    return found


_ENTRY = Columns(BlacklistEntry, "b")


@functools.lru_cache(maxsize=512)  # one per number of pairs: a chat batch asks for up to three per message
def _listed_sql(vendor: str, pairs: int) -> str:
    pair = f"({column(BlacklistEntry, 'kind', 'b')} = %s AND {column(BlacklistEntry, 'value', 'b')} = %s)"
    return (f"SELECT {_ENTRY.sql()} FROM {table(BlacklistEntry)} b "
            f"WHERE {column(BlacklistEntry, 'expires_at', 'b')} > %s AND ({' OR '.join([pair] * pairs)})")


def listed(*, account: str = "", ip: str | None = None, device: str = "", now: datetime | None = None
           ) -> dict[str, datetime]:
    """Which of the account, the IP and the device an active entry lists,
    each with the latest expiry: ``{"account": expires_at, …}``. One query."""
    return {kind: expires_at for (kind, _), expires_at in
            _listed_pairs(_wanted(account, ip, device), now=now).items()}


def system_busy() -> str:
    """What a buyer is told when refused, in the active language: the same
    words as the risk check's ``message`` (the order system shows them)."""
    return gettext("System busy, please try later")


def _refusal(found: dict[str, datetime], *, told) -> Blacklisted:
    """The refusal for what is listed, worded for who is told: a buyer, or
    someone not yet known (a login), reads only "system busy"; staff (an
    agent acting for a buyer, a merchant's staff) read what is listed and
    until when."""
    if told is None or roles.role_of(told) in (None, roles.BUYER):
        return Blacklisted(system_busy())
    until = max(found.values())
    kinds = ", ".join(str(Kind(kind).label) for kind in (Kind.ACCOUNT, Kind.IP, Kind.DEVICE) if kind in found)
    return Blacklisted(
        gettext("Refused: on the blacklist (%(kinds)s) until %(until)s.")
        % {"kinds": kinds, "until": timezone.localtime(until).strftime("%Y-%m-%d %H:%M")},
        listed=sorted(found),
    )


def blacklist_guard(*, door: str, user=None, actor=None, username: str = "", ip: str | None = None,
                    device: str = "", now: datetime | None = None) -> None:
    """``core.doors``' guard: refuse (403 ``blacklisted``) when the account,
    the request's IP or its device is on the blacklist."""
    found = listed(account=username, ip=ip, device=device, now=now)
    if found:
        raise _refusal(found, told=actor if actor is not None else user)


def _blacklist_guard_many(*, door: str, people: dict, now: datetime | None = None) -> dict:
    """The guard for several people at once (the chat writer's batch): one query."""
    wanted = {key: _wanted(p.get("username", ""), p.get("ip"), p.get("device", "")) for key, p in people.items()}
    active = _listed_pairs((pair for pairs in wanted.values() for pair in pairs), now=now)
    refused = {}
    for key, pairs in wanted.items():
        found: dict[str, datetime] = {}
        for kind, value in pairs:
            if (kind, value) in active:
                found[kind] = active[(kind, value)]
        if found:
            person = people[key]
            refused[key] = _refusal(found, told=person.get("actor") or person.get("user"))
    return refused


blacklist_guard.many = _blacklist_guard_many


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


def _tripped(counts: dict[str, int], limits: dict[str, int]) -> list[str]:
    """The counts above their limit ("more than K"), in a fixed order."""
    return [name for name in ("remedies", "tickets", "accounts") if name in counts and counts[name] > limits[name]]


def blacklist_from_recent_counts(*, now: datetime | None = None) -> list[BlacklistEntry]:
    """The automatic rule (every 15 minutes): over the last
    ``policy.blacklist_window_days`` days (today included), a buyer account
    with more than K remedies or tickets, an IP or a device whose buyers
    together had more than K remedies or tickets, or on which more than K
    buyer accounts logged in, goes on the blacklist for
    ``policy.blacklist_entry_days`` days. The entry keeps the counts that
    tripped it (``counts``). Idempotent: an active entry is not added twice."""
    now = now or timezone.now()
    policy = get_policy()
    window = policy.blacklist_window_days
    first_day = timezone.localdate(now) - timedelta(days=window - 1)
    since = timezone.make_aware(datetime.combine(first_day, datetime.min.time()))
    limits = {"remedies": policy.blacklist_max_remedies, "tickets": policy.blacklist_max_tickets,
              "accounts": policy.blacklist_max_accounts}
    remedies = dict(BuyerCounter.objects.filter(date__gte=first_day, date__lte=timezone.localdate(now))
                    .values("buyer_id").annotate(n=Sum("count")).values_list("buyer_id", "n"))
    tickets = dict(Ticket.objects.filter(created_at__gte=since, created_at__lte=now, buyer__isnull=False)
                   .values("buyer_id").annotate(n=Count("id")).values_list("buyer_id", "n"))
    # buyers' logins only: agents share office addresses, and nobody blacklists an office
    logins = (LoginEvent.objects.filter(at__gte=since, at__lte=now, user__groups__name=roles.BUYER)
              .values_list("user_id", "ip", "device").distinct())
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    for user_id, ip, device in logins:
        if ip:
            seen[(Kind.IP, ip)].add(user_id)
        if device:
            seen[(Kind.DEVICE, device)].add(user_id)

    candidates: list[tuple[str, str, dict]] = []
    usernames = dict(User.objects.filter(pk__in=set(remedies) | set(tickets)).values_list("pk", "username"))
    for user_id in sorted(set(remedies) | set(tickets)):
        counts = {"remedies": remedies.get(user_id, 0), "tickets": tickets.get(user_id, 0)}
        if _tripped(counts, limits) and user_id in usernames:
            candidates.append((Kind.ACCOUNT, usernames[user_id], counts))
    for (kind, value), users in sorted(seen.items()):
        counts = {"remedies": sum(remedies.get(u, 0) for u in users), "tickets": sum(tickets.get(u, 0) for u in users),
                  "accounts": len(users)}
        if _tripped(counts, limits):
            candidates.append((kind, value, counts))

    added = []
    for kind, value, counts in candidates:
        tripped = _tripped(counts, limits)
        with transaction.atomic():
            if active_blacklist(kind=kind, value=value, now=now):
                continue
            added.append(BlacklistEntry.objects.create(
                kind=kind, value=value, window_days=policy.blacklist_entry_days,
                reason="; ".join(f"{name} {counts[name]} > {limits[name]}" for name in tripped)
                + f" in the last {window} days",
                counts={"window_days": window, "since": first_day.isoformat(), "counts": counts,
                        "limits": {name: limits[name] for name in counts}, "tripped": tripped},
                expires_at=now + timedelta(days=policy.blacklist_entry_days),
                source=BlacklistEntry.Source.ROLLING_COUNTS, created_at=now,
            ))
    return added
