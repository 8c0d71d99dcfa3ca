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
returns; it reads, it never writes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

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
