from django.core.management.base import BaseCommand

from tickets.services import sweep_sla


class Command(BaseCommand):
    help = "Find SLA breaches, escalate each one tier, record and alert (idempotent)."

    def handle(self, *args, **options) -> None:
        breaches = sweep_sla()
        noun = "breach" if len(breaches) == 1 else "breaches"
        self.stdout.write(f"{len(breaches)} {noun} recorded.")
        for breach in breaches:
            self.stdout.write(f"  #{breach.ticket_id} grade {breach.grade}: tier {breach.tier_before} → {breach.tier_after}")
