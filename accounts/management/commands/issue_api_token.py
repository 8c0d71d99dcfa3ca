"""Issue an API token for an account without a password login: the machine
accounts (the order system, carrier feeds) get theirs this way. The key is
printed once; only its digest is stored."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.roles import INTEGRATION
from accounts.services import create_user, issue_api_token


class Command(BaseCommand):
    help = "Issue a new API token for USERNAME and print it (earlier tokens stay valid unless --revoke-others)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--revoke-others", action="store_true", help="revoke the account's earlier tokens")
        parser.add_argument("--create", metavar="DISPLAY_NAME", nargs="?", const="", default=None,
                            help="create USERNAME first as a machine account (the integration role, no password) "
                                 "if it does not exist: the order system's first token on a new installation")

    def handle(self, *args, username: str, revoke_others: bool = False, create: str | None = None, **options) -> None:
        user = User.objects.filter(username=username, is_active=True).first()
        if user is None and create is not None and not User.objects.filter(username=username).exists():
            user = create_user(username=username, password=None, role=INTEGRATION, display_name=create or username)
            self.stdout.write(f"created the machine account {username!r} (integration role)\n")
        if user is None:
            raise CommandError(f"No active account {username!r} (--create makes a machine account).")
        if revoke_others:
            user.api_tokens.all().delete()
        issued = issue_api_token(user=user)
        expires = issued.expires_at.isoformat() if issued.expires_at else "never"
        self.stdout.write(f"Authorization: Token {issued.key}\n(expires: {expires})\n")
