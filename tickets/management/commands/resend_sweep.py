from django.core.management.base import BaseCommand

from tickets.services import sweep_missed_resends


class Command(BaseCommand):
    help = "Mark compelled resends past their deadline missed, lower credit, escalate their tickets (idempotent)."

    def handle(self, *args, **options) -> None:
        escalated = sweep_missed_resends()
        self.stdout.write(f"{len(escalated)} tickets escalated for missed resends.")
