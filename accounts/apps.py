from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


def _groups_changed(sender, instance, action, reverse, pk_set, **kwargs) -> None:
    """The role cache of every user whose groups changed (the admin, set_role,
    a group's members edited from the group side). Cache upkeep only."""
    if action not in ("post_add", "post_remove", "post_clear", "pre_clear"):
        return
    from accounts import roles
    from accounts.models import User

    if not reverse:  # user.groups.add(...)
        roles.forget(instance)
    elif action == "pre_clear":
        for user_id in User.objects.filter(groups=instance).values_list("pk", flat=True):
            roles.forget(user_id=user_id)
    else:  # group.user_set.add(...)
        for user_id in pk_set or ():
            roles.forget(user_id=user_id)


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
        from django.db.models.signals import m2m_changed

        from accounts.models import User

        m2m_changed.connect(_groups_changed, sender=User.groups.through, dispatch_uid="accounts.role_cache")
        # a socket's user comes with its role groups, as an API token's does (no cache read per connect)
        from accounts import roles
        from core import ws_auth

        ws_auth.read_with_user(roles.role_groups_column, roles.remember_role_group_names)
