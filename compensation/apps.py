from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CompensationConfig(AppConfig):
    name = "compensation"
    verbose_name = _("Compensation")

    def ready(self) -> None:
        # the blacklist is enforced at every door of the workbench (core.doors):
        # login, ticket and chat intake, payouts, as well as remedies here
        from compensation.services.blacklist import blacklist_guard
        from core import doors

        doors.register(blacklist_guard)
