"""Publish to websocket groups after commit.

The database is the source of truth; the channel layer only wakes clients, so
a publish that fails is logged and never undoes the write that caused it.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)


def send_now(group: str, payload: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": "broadcast", "payload": payload})
    except Exception:  # a dropped wake-up is recovered by the database replay
        logger.exception("publish to %s failed", group)


def publish_on_commit(groups: list[str], payload: dict[str, Any]) -> None:
    """Send ``payload`` to each group once the current transaction commits."""

    def _send() -> None:
        for group in groups:
            send_now(group, payload)

    transaction.on_commit(_send)
