from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _create_role_groups(sender, **kwargs) -> None:
    from accounts.roles import ensure_role_groups

    ensure_role_groups()


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = _("Accounts")

    def ready(self) -> None:
        # Permissions exist only after migrate; the role groups follow them.
        post_migrate.connect(_create_role_groups, sender=self, dispatch_uid="accounts.role_groups")
        from django.contrib.auth.signals import user_logged_in

        from accounts.logins import record_session_login

        user_logged_in.connect(record_session_login, dispatch_uid="accounts.login_history")
        # the API token's security scheme in the OpenAPI schema
        import accounts.schema  # noqa: F401
