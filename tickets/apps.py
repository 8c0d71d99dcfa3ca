from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class TicketsConfig(AppConfig):
    name = "tickets"
    verbose_name = _("Tickets")

    def ready(self) -> None:
        # intake reads the routing rules from a cache; a change anywhere (the
        # admin, a migration, a test) empties it. Cache upkeep, not a business rule.
        from tickets.models import Queue, RoutingRule
        from tickets.services.routing import forget_routing_rules

        for model in (RoutingRule, Queue):
            post_save.connect(forget_routing_rules, sender=model, dispatch_uid=f"routing-cache-save-{model.__name__}")
            post_delete.connect(forget_routing_rules, sender=model, dispatch_uid=f"routing-cache-del-{model.__name__}")
