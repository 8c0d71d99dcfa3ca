"""Run the periodic jobs inline, beside the server, in the embedded default.

Production runs the same table (``CELERY_BEAT_SCHEDULE``) with Celery beat;
this loop exists so that one process on a laptop gets SLA sweeps and shift
reminders too.
"""

from __future__ import annotations

import logging
import signal
import time

from django.conf import settings
from django.core.management.base import BaseCommand

from cs_portal.celery import app

logger = logging.getLogger(__name__)


def _seconds(schedule) -> float:
    return schedule.total_seconds() if hasattr(schedule, "total_seconds") else float(schedule)


class Command(BaseCommand):
    help = "Run the CELERY_BEAT_SCHEDULE jobs inline in a loop (embedded default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run every job once and exit")

    def handle(self, *args, once: bool = False, **options) -> None:
        app.loader.import_default_modules()
        jobs = {name: (entry["task"], _seconds(entry["schedule"])) for name, entry in settings.CELERY_BEAT_SCHEDULE.items()}
        next_run = dict.fromkeys(jobs, 0.0)
        stop = {"now": False}

        def _stop(*_):
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.stdout.write(f"Periodic jobs: {', '.join(f'{n} every {s:g}s' for n, (_, s) in jobs.items())}")
        while not stop["now"]:
            now = time.monotonic()
            for name, (task_name, every) in jobs.items():
                if now < next_run[name]:
                    continue
                next_run[name] = now + every
                try:
                    result = app.tasks[task_name].apply().get()
                    if result:
                        self.stdout.write(f"{name}: {result}")
                except Exception:  # one failing job must not stop the others
                    logger.exception("periodic job %s failed", name)
            if once:
                return
            time.sleep(1)
