"""Issue an API token for an account without a password login: the machine
accounts (the order system, carrier feeds) get theirs this way. The key is
printed once; only its digest is stored."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import issue_api_token


class Command(BaseCommand):
    help = "Issue a new API token for USERNAME and print it (earlier tokens stay valid unless --revoke-others)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--revoke-others", action="store_true", help="revoke the account's earlier tokens")

    def handle(self, *args, username: str, revoke_others: bool = False, **options) -> None:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"No active account {username!r}.")
        if revoke_others:
            user.api_tokens.all().delete()
        issued = issue_api_token(user=user)
        expires = issued.expires_at.isoformat() if issued.expires_at else "never"
        self.stdout.write(f"Authorization: Token {issued.key}\n(expires: {expires})\n")
