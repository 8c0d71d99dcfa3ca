from django.core.management.base import BaseCommand

from merchants.services import auto_confirm_orders


class Command(BaseCommand):
    help = "Release to merchants the escrow of orders past the auto-confirm days (idempotent)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, default=None, help="override AUTO_CONFIRM_DAYS")

    def handle(self, *args, days=None, **options) -> None:
        released = auto_confirm_orders(days=days)
        self.stdout.write(f"{len(released)} orders released.")
