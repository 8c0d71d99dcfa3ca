"""Run the periodic jobs inline in a loop (or once), outside the server."""

from __future__ import annotations

import signal
import time

from django.core.management.base import BaseCommand

from cs_portal.periodic import Schedule


class Command(BaseCommand):
    help = "Run the CELERY_BEAT_SCHEDULE jobs inline in a loop (embedded default)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--once", action="store_true", help="run every job once and exit")

    def handle(self, *args, once: bool = False, **options) -> None:
        schedule = Schedule()
        stop = {"now": False}

        def _stop(*_):
            stop["now"] = True

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.stdout.write(f"Periodic jobs: {schedule.describe()}")
        while not stop["now"]:
            for name, result in schedule.run_due().items():
                if result:
                    self.stdout.write(f"{name}: {result}")
            if once:
                return
            time.sleep(1)
