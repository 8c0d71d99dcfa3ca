"""Pure decisions of ``incidents``: no writes, no queries.

The carrier-event rules (when a region's count raises a grade-2 incident)
and the incident deadline sweep (when a deadline has passed and to which
tier it escalates) ask these; so do the tests.
"""

from __future__ import annotations

from datetime import datetime

from tickets import sla


def reaches_threshold(*, parcels: int, threshold: int) -> bool:
    """The emergency plan's grade-2 rules say "20 or more backlog, 5 or more
    lost, 100 or more stuck": 以上 includes the number."""
    return parcels >= threshold


def deadline_passed(*, status: str, due_at: datetime | None, now: datetime) -> bool:
    """An open incident whose deadline is behind it (``Incident.Status.OPEN``)."""
    return status == "open" and due_at is not None and due_at < now


def next_owner_tier(tier: int) -> int:
    """A passed deadline hands the incident one tier up (agent → team lead →
    head → all levels); at the top it stays, and each period alerts again."""
    return min(tier + 1, sla.MAX_TIER)


def crossed(value, threshold, *, below: bool = False) -> bool:
    """The market board: a figure past its threshold (above it, or below it for
    a figure that should stay high, the CSAT). No value or no threshold: never."""
    if value is None or not threshold:
        return False
    return value < threshold if below else value > threshold
