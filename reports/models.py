from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ExportRecord(models.Model):
    """Every CSV export, written before its first row: who took what, with
    which filters, when; the row count once the last row has gone out."""

    class Kind(models.TextChoices):
        TICKETS = "tickets", _("Tickets")
        REMEDIES = "remedies", _("Remedies")
        LEDGER = "ledger", _("Ledger")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    filters = models.JSONField(_("filters"), default=dict)
    client_ip = models.GenericIPAddressField(_("client address"), null=True, blank=True)
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    row_count = models.PositiveIntegerField(_("rows"), null=True, blank=True)

    class Meta:
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        ordering = ["-started_at", "-id"]
        indexes = [models.Index(fields=["user", "-started_at"], name="export_user_recent")]

    def __str__(self) -> str:
        return f"{self.kind} {self.started_at:%Y-%m-%d %H:%M}"
