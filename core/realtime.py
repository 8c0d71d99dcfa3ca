"""Publish to websocket groups after commit.

The database is the source of truth; the channel layer only wakes clients, so
a publish that fails is logged and never undoes the write that caused it
(every consumer re-reads from the database when it reconnects or the layer
comes back).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def send_now(groups: str | list[str], payload: dict[str, Any]) -> None:
    """Wake ``groups`` with ``payload`` now, from synchronous code."""
    send_event_now(groups, {"type": "broadcast", "payload": payload})


def send_event_now(groups: str | list[str], message: dict[str, Any]) -> None:
    """Send a channel-layer event (its ``type`` names the consumers' handler) now."""
    layer = get_channel_layer()
    if layer is None:
        return
    names = [groups] if isinstance(groups, str) else groups
    try:
        if hasattr(layer, "group_send_sync"):  # the production layer: one PUBLISH, no event loop
            layer.group_send_sync(names, message)
        else:
            for group in names:
                async_to_sync(layer.group_send)(group, message)
    except Exception as error:  # a dropped wake-up is recovered by the database replay
        # one line, not a traceback per publish: an outage at peak would bury the log
        logger.warning("publish to %s failed: %s: %s", ", ".join(names), type(error).__name__, error)


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
