"""Publish to websocket groups after commit.

The database is the source of truth; the channel layer only wakes clients, so
a publish that fails is logged and never undoes the write that caused it
(every consumer re-reads from the database when it reconnects or the layer
comes back).

Inside ``published_together()`` (every HTTP request runs in one:
``core.middleware.PublishTogetherMiddleware``) what is published is kept and
sent when the block ends, in order, in one round trip: a remedy publishes
three or four events after its commit (the message, the budget, the ticket),
a ticket opened two, and a round trip each cost the request ~0.15 ms of CPU.
The commit still decides what is published (a rolled-back transaction's
``on_commit`` never runs); the block only decides when.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

# the events a ``published_together`` block keeps, as ``(groups, message)``
_together: ContextVar[list | None] = ContextVar("cs_published_together", default=None)
# a block that publishes more (a bulk job run in a request) sends what it has kept so far
TOGETHER_MAX = 64


@contextmanager
def published_together() -> Iterator[None]:
    """Keep what is published inside the block and send it at its end, in
    order, in one round trip (or every ``TOGETHER_MAX`` events)."""
    if _together.get() is not None:  # nested: the outer block sends
        yield
        return
    kept: list = []
    token = _together.set(kept)
    try:
        yield
    finally:
        _together.reset(token)
        _send_many(kept)


def send_now(groups: str | list[str], payload: dict[str, Any]) -> None:
    """Wake ``groups`` with ``payload`` now, from synchronous code."""
    send_event_now(groups, {"type": "broadcast", "payload": payload})


def send_event_now(groups: str | list[str], message: dict[str, Any]) -> None:
    """Send a channel-layer event (its ``type`` names the consumers' handler)
    now, or at the end of the ``published_together`` block this runs in."""
    names = [groups] if isinstance(groups, str) else list(groups)
    kept = _together.get()
    if kept is None:
        _send_many([(names, message)])
        return
    kept.append((names, message))
    if len(kept) >= TOGETHER_MAX:
        _send_many(kept[:])
        kept.clear()


def _send_many(events: list[tuple[list[str], dict[str, Any]]]) -> None:
    """Each ``(groups, message)`` in order: one round trip per Redis host on
    the production layer (no event loop); a failure is logged."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    try:
        if hasattr(layer, "group_send_many_sync"):
            layer.group_send_many_sync(events)
        else:
            for names, message in events:
                for group in names:
                    async_to_sync(layer.group_send)(group, message)
    except Exception as error:  # dropped wake-ups are recovered by the database replay
        # one line, not a traceback per publish: an outage at peak would bury the log
        groups = ", ".join(dict.fromkeys(group for names, _ in events for group in names))
        logger.warning("publish to %s failed: %s: %s", groups, type(error).__name__, error)


def publish_on_commit(groups: list[str], payload: dict[str, Any]) -> None:
    """Send ``payload`` to each group once the current transaction commits."""
    transaction.on_commit(lambda: send_now(groups, payload))


def send_event_on_commit(groups: list[str], message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: send_event_now(groups, message))


async def send_events(events: list[tuple[str, dict[str, Any]]]) -> None:
    """From async code: each ``(group, event)`` in order, in one round trip on
    the production layer. A failure is logged; the database replay recovers."""
    layer = get_channel_layer()
    if layer is None or not events:
        return
    try:
        if hasattr(layer, "group_send_many"):
            await layer.group_send_many(events)
        else:
            for group, message in events:
                await layer.group_send(group, message)
    except Exception as error:
        logger.warning("publish of %d events failed: %s: %s", len(events), type(error).__name__, error)
