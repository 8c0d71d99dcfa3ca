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

    # indexed by export_user_recent, which leads with it
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, db_index=False, related_name="+")
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


class DailyFigure(models.Model):
    """One additive figure of one closed local day, for the whole platform
    (``grouping`` empty), per agent or per queue: what the reports sum for the
    days up to ``RollupState.through`` instead of scanning their rows (the
    days after it, today at least, are read live). Written only by
    ``reports.services.roll_up_day`` (delete + insert of the day, in one
    transaction: a recompute is idempotent).

    ``measure`` and what ``key``, ``count``, ``total``, ``extra`` hold:

    - ``csat``: key = the score; count = ratings given that day.
    - ``chat``: key = the local day the buyer's wait began (ISO; the day
      itself but for waits across midnight); count = agent replies that ended
      a wait that day, total = the waits' microseconds, extra = how many of
      them were over ``RollupState.chat_target_s``.
    - ``resolved``: key = the grade; count = tickets resolved that day, extra =
      of them, those without any ``SlaBreach``.
    - ``remedy``: key = the kind; count = executed that day, total = their
      cost to the compensation budget in fen.
    - ``opened`` (whole platform only): key = the category, key2 = the order's
      region (empty without an order); count = tickets opened that day.
    - ``carrier`` (whole platform only; the day the shipments were shipped):
      key = the carrier; count = shipments, total = on time, extra = damaged,
      extra2 = lost, extra3 = stuck, ratings / rating_sum = the ratings of
      tickets about them.
    """

    day = models.DateField()
    grouping = models.CharField(max_length=8, blank=True)  # "", "agent", "queue"
    group_id = models.BigIntegerField(null=True, blank=True)  # the agent's or queue's id; null: none
    measure = models.CharField(max_length=16)
    key = models.CharField(max_length=40, blank=True)
    key2 = models.CharField(max_length=40, blank=True)
    count = models.BigIntegerField(default=0)
    total = models.BigIntegerField(default=0)
    extra = models.BigIntegerField(default=0)
    extra2 = models.BigIntegerField(default=0)
    extra3 = models.BigIntegerField(default=0)
    ratings = models.BigIntegerField(default=0)
    rating_sum = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["grouping", "measure", "day"], name="dailyfigure_lookup")]

    def __str__(self) -> str:
        return f"{self.day} {self.grouping or 'all'} {self.group_id} {self.measure} {self.key}"


class RollupState(models.Model):
    """One row (pk 1): every local day up to ``through`` is in
    ``DailyFigure``; the over-target chat counts there are against
    ``chat_target_s`` (another target in the settings: the chat figure is read
    live until the job has recomputed them)."""

    through = models.DateField(null=True, blank=True)
    chat_target_s = models.IntegerField(null=True, blank=True)
    refreshed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"rolled up through {self.through}"
