"""The doors where the workbench meets a person, and the guards that may
refuse someone at any of them.

A door is a login (API token or form), ticket intake (API or the buyer's chat
page), a chat message, a remedy, a merchant's payout. The app that owns a door
asks ``check(door=..., user=..., ip=..., device=...)`` before it lets anyone
through; an app higher up registers its guard at start-up
(``AppConfig.ready``): ``compensation`` registers the blacklist. So every door
enforces the blacklist without a lower app importing a higher one, and a guard
added later reaches every door at once.

A guard raises a ``DomainError`` (``Blacklisted``: 403 ``blacklisted``) or
returns; it reads, it never writes. A guard may also offer a ``many`` form
(``guard.many(door=..., people={key: {...}}, now=...) -> {key: refusal}``)
that answers for several people in one query: ``check_many`` (the chat
writer's batch) uses it, so a batch costs the same for one buyer as for fifty.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime

from core.errors import DomainError

LOGIN, TICKET, CHAT, REMEDY, PAYOUT = "login", "ticket", "chat", "remedy", "payout"
DOORS = (LOGIN, TICKET, CHAT, REMEDY, PAYOUT)

Guard = Callable[..., None]
_guards: list[Guard] = []


def register(guard: Guard) -> None:
    """Add a guard to every door (once, however often the app starts)."""
    if guard not in _guards:
        _guards.append(guard)


def check(*, door: str, user=None, actor=None, username: str = "", ip: str | None = None, device: str = "",
          now: datetime | None = None) -> None:
    """Let the person through, or raise the first guard's refusal. ``user``
    is the person at the door (``username`` alone where only that is known),
    ``actor`` who acts for them when it is someone else (an agent opening a
    buyer's ticket: the refusal's wording is for the actor), the request's
    ``ip`` and ``device`` when the door has a request
    (``accounts.logins.ip_and_device``)."""
    assert door in DOORS, door
    if user is not None and not username:
        username = getattr(user, "username", "") or ""
    for guard in _guards:
        guard(door=door, user=user, actor=actor, username=username, ip=ip or None, device=device or "", now=now)


def check_many(*, door: str, people: dict[Hashable, dict], now: datetime | None = None) -> dict[Hashable, DomainError]:
    """``check`` for several people at once: ``people`` maps a key to the
    keyword arguments of ``check`` (``username``, ``ip``, ``device``, …);
    the answer maps the key of each one refused to the refusal. A guard's
    ``many`` form answers for all of them in one go, a guard without one is
    asked person by person."""
    assert door in DOORS, door
    refused: dict[Hashable, DomainError] = {}
    for guard in _guards:
        waiting = {key: {"user": None, "actor": None, "username": "", **person, "ip": person.get("ip") or None,
                         "device": person.get("device") or ""}
                   for key, person in people.items() if key not in refused}
        if not waiting:
            break
        many = getattr(guard, "many", None)
        if many is not None:
            refused.update(many(door=door, people=waiting, now=now))
            continue
        for key, person in waiting.items():
            try:
                guard(door=door, now=now, **person)
            except DomainError as refusal:
                refused[key] = refusal
    return refused
