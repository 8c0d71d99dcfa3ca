"""The periodic jobs of ``CELERY_BEAT_SCHEDULE``, run inline.

Production runs the table with Celery beat. The embedded default runs it
here: in the server's own process (``EmbeddedJobs`` below, so the alerts the
jobs publish reach consoles through the in-memory channel layer) or with
``manage.py run_periodic``.
"""

from __future__ import annotations

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

logger = logging.getLogger(__name__)


def _seconds(schedule) -> float:
    return schedule.total_seconds() if hasattr(schedule, "total_seconds") else float(schedule)


class Schedule:
    """Which job is due when; ``run_due`` runs the due ones (each failure logged, never fatal)."""

    def __init__(self) -> None:
        from cs_portal.celery import app

        app.loader.import_default_modules()
        self.app = app
        self.jobs = {name: (entry["task"], _seconds(entry["schedule"]))
                     for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
        self.next_run = dict.fromkeys(self.jobs, 0.0)

    def describe(self) -> str:
        return ", ".join(f"{name} every {every:g}s" for name, (_, every) in self.jobs.items())

    def run_due(self) -> dict[str, object]:
        now = time.monotonic()
        results = {}
        for name, (task_name, every) in self.jobs.items():
            if now < self.next_run[name]:
                continue
            self.next_run[name] = now + every
            try:
                results[name] = self.app.tasks[task_name].apply().get()
            except Exception:  # one failing job must not stop the others
                logger.exception("periodic job %s failed", name)
        return results


def _run_due_and_release(schedule: Schedule) -> dict[str, object]:
    try:
        return schedule.run_due()
    finally:
        close_old_connections()  # this worker thread keeps no connection between ticks


async def run_forever(schedule: Schedule, *, tick: float = 1.0) -> None:
    run_due = sync_to_async(_run_due_and_release, thread_sensitive=False)
    while True:
        await run_due(schedule)
        await asyncio.sleep(tick)


class EmbeddedJobs:
    """ASGI wrapper that starts the periodic loop on the server's own event
    loop at the first connection (daphne has no lifespan events)."""

    def __init__(self, app) -> None:
        self.app = app
        self.task: asyncio.Task | None = None

    async def __call__(self, scope, receive, send):
        if self.task is None:
            self.task = asyncio.ensure_future(run_forever(Schedule()))
        return await self.app(scope, receive, send)
