"""Queueing background work from a request, after its transaction commits.

The broker (Redis in production) may be away for a moment: the write that
asked for the work has committed and the client must not get a 500 for it.
The work is left to the periodic sweeps that pick up what was not done (a
bulk job whose heartbeat stopped is resumed; waiting chats are dispatched
again), and the failure is logged.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import transaction
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)


def enqueue(task, *args, **kwargs) -> bool:
    """``task.delay(...)`` now; False (logged) when the broker did not take it."""
    import_string(settings.TASKS_APP)  # the project's app, loaded on first use, is the one that sends
    try:
        task.delay(*args, **kwargs)
        return True
    except Exception as error:  # kombu's OperationalError, a Redis error: the sweep will do it
        logger.warning("could not queue %s: %s: %s", getattr(task, "name", task), type(error).__name__, error)
        return False


def enqueue_on_commit(task, *args, **kwargs) -> None:
    transaction.on_commit(lambda: enqueue(task, *args, **kwargs))
