from django.core.management.base import BaseCommand, CommandError

from compensation.ledger import verify


class Command(BaseCommand):
    help = "Check the ledger's hash chain and that every remedy's entries balance."

    def handle(self, *args, **options) -> None:
        result = verify()
        if result.ok:
            self.stdout.write(self.style.SUCCESS(f"Ledger OK: {result.entries} entries, chain intact, every remedy balances."))
            return
        lines = [f"Ledger BROKEN after checking {result.entries} entries:"]
        if result.broken_links:
            lines.append(f"  broken links at entries {result.broken_links[:20]}")
        if result.bad_hashes:
            lines.append(f"  altered entries {result.bad_hashes[:20]}")
        if result.unbalanced_remedies:
            lines.append(f"  unbalanced remedies {result.unbalanced_remedies[:20]}")
        if result.head_mismatch:
            lines.append("  the head does not match the last entry (entries removed or added outside the ledger)")
        raise CommandError("\n".join(lines))
