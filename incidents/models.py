"""Graded incidents, the carrier events that raise them, and bulk jobs.

An incident groups many tickets (one lost-parcel wave in a region) under the
emergency plan's grades; carrier exceptions arrive by themselves through the
logistics events API; bulk jobs act on an incident's tickets (or a risk
list's orders) one item at a time, each item done at most once.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from merchants.models import Order, Shipment
from tickets import sla
from tickets.models import Category, Ticket


class Incident(models.Model):
    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        CLOSED = "closed", _("Closed")

    class Rule(models.TextChoices):
        MANUAL = "", _("Opened by hand")
        BACKLOG = "backlog", _("Backlog in a region")
        LOST = "lost", _("Lost parcels in a region")
        STUCK = "stuck", _("Parcels stuck in transit")
        # grade 1 (severe): one carrier event is enough
        THEFT = "theft", _("Parcels stolen")
        ROBBERY = "robbery", _("Parcels robbed")
        SEIZURE = "seizure", _("Parcels seized")
        TRAFFIC_ACCIDENT = "traffic_accident", _("Traffic accident")
        PROHIBITED_ITEMS = "prohibited_items", _("Prohibited items found")

    title = models.CharField(_("title"), max_length=160)
    grade = models.CharField(_("grade"), max_length=8, choices=sla.GRADE_CHOICES)
    owner_tier = models.PositiveSmallIntegerField(_("owner tier"), choices=sla.TIER_CHOICES)
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.OPEN)
    rule = models.CharField(_("raised by rule"), max_length=16, choices=Rule.choices, blank=True, default="")
    region = models.CharField(_("region"), max_length=32, blank=True)
    carrier = models.CharField(_("carrier"), max_length=32, blank=True)
    category = models.CharField(_("category"), max_length=32, choices=Category.choices, blank=True)
    description = models.TextField(_("description"), blank=True)
    opened_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="+")
    opened_at = models.DateTimeField(_("opened at"), default=timezone.now)
    due_at = models.DateTimeField(_("due at"))
    # the deadline sweep: each passed deadline escalates the owning tier once and
    # starts a fresh period (``due_at`` moves on), so it is counted once per period
    breaches = models.PositiveSmallIntegerField(_("deadlines passed"), default=0)
    breached_at = models.DateTimeField(_("last deadline passed at"), null=True, blank=True)
    # the aftermath review, written when it is closed
    cause = models.TextField(_("cause"), blank=True)
    actions_taken = models.TextField(_("what was done"), blank=True)
    prevention = models.TextField(_("preventive measures"), blank=True)
    closed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                  related_name="+")
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    tickets = models.ManyToManyField(Ticket, through="IncidentTicket", related_name="incidents")

    class Meta:
        verbose_name = _("incident")
        verbose_name_plural = _("incidents")
        ordering = ["-opened_at", "-id"]
        constraints = [
            # the rules raise one open incident per region and rule, however often they fire
            models.UniqueConstraint(fields=["region", "rule"], condition=models.Q(status="open") & ~models.Q(rule=""),
                                    name="incident_one_open_per_rule_region"),
        ]
        indexes = [
            models.Index(fields=["status", "-opened_at"], name="incident_status_recent"),
            models.Index(fields=["status", "due_at"], name="incident_status_due"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.title}"


class IncidentTicket(models.Model):
    # indexed by incident_ticket_unique, which leads with it
    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, db_index=False, related_name="links")
    ticket = models.ForeignKey(Ticket, on_delete=models.CASCADE, related_name="incident_links")
    added_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                 related_name="+")
    added_at = models.DateTimeField(_("added at"), default=timezone.now)

    class Meta:
        verbose_name = _("incident ticket")
        verbose_name_plural = _("incident tickets")
        constraints = [models.UniqueConstraint(fields=["incident", "ticket"], name="incident_ticket_unique")]


class IncidentEvent(models.Model):
    """The incident's timeline (append-only): opened, tickets linked, bulk jobs, closed."""

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("kind"), max_length=32)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+")
    data = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("incident event")
        verbose_name_plural = _("incident events")
        ordering = ["created_at", "id"]


class LogisticsEvent(models.Model):
    """One carrier event, stored once per carrier event id."""

    class Kind(models.TextChoices):
        PICKED_UP = "picked_up", _("Picked up")
        IN_TRANSIT = "in_transit", _("In transit")
        OUT_FOR_DELIVERY = "out_for_delivery", _("Out for delivery")
        DELIVERED = "delivered", _("Delivered")
        BACKLOG = "backlog", _("Held in a backlog")
        LOST = "lost", _("Lost")
        DAMAGED = "damaged", _("Damaged")
        STUCK = "stuck", _("No movement for days")
        RETURNED = "returned", _("Returned to sender")
        # the emergency plan's grade-1 (severe) events: each raises a grade-1 incident owned by the head
        THEFT = "theft", _("Stolen")
        ROBBERY = "robbery", _("Robbed")
        SEIZURE = "seizure", _("Seized")
        TRAFFIC_ACCIDENT = "traffic_accident", _("Traffic accident")
        PROHIBITED_ITEMS = "prohibited_items", _("Prohibited items")

    SEVERE = (Kind.THEFT, Kind.ROBBERY, Kind.SEIZURE, Kind.TRAFFIC_ACCIDENT, Kind.PROHIBITED_ITEMS)
    EXCEPTIONS = (Kind.BACKLOG, Kind.LOST, Kind.DAMAGED, Kind.STUCK, Kind.RETURNED, *SEVERE)

    event_id = models.CharField(_("carrier event id"), max_length=64, unique=True)
    shipment = models.ForeignKey(Shipment, on_delete=models.PROTECT, related_name="carrier_events")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    carrier = models.CharField(_("carrier"), max_length=32)
    tracking_no = models.CharField(_("tracking no."), max_length=64)
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    location = models.CharField(_("location"), max_length=64, blank=True)
    region = models.CharField(_("region"), max_length=32, blank=True)
    ticket = models.ForeignKey(Ticket, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    received_at = models.DateTimeField(_("received at"), default=timezone.now)

    class Meta:
        verbose_name = _("carrier event")
        verbose_name_plural = _("carrier events")
        ordering = ["-occurred_at", "-id"]
        indexes = [models.Index(fields=["region", "kind", "occurred_at"], name="logistics_rule_count")]

    def __str__(self) -> str:
        return f"{self.carrier} {self.tracking_no} {self.kind}"


class BulkJob(models.Model):
    class Kind(models.TextChoices):
        MACRO_REPLY = "macro_reply", _("Macro reply")
        REMEDY = "remedy", _("Bulk remedy")
        CANCEL = "cancel", _("Cancel pending orders")
        COUPON_COMPENSATION = "coupon_comp", _("Failed coupon compensation")

    class Status(models.TextChoices):
        PREVIEWED = "previewed", _("Previewed")
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        UNDONE = "undone", _("Undone")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    status = models.CharField(_("status"), max_length=12, choices=Status.choices, default=Status.PREVIEWED)
    incident = models.ForeignKey(Incident, on_delete=models.PROTECT, null=True, blank=True, related_name="jobs")
    params = models.JSONField(_("parameters"), default=dict)
    total = models.PositiveIntegerField(_("items"), default=0)
    done_count = models.PositiveIntegerField(_("done"), default=0)
    skipped_count = models.PositiveIntegerField(_("skipped"), default=0)
    failed_count = models.PositiveIntegerField(_("failed"), default=0)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    # written with each progress report: a running job whose heartbeat stops was interrupted
    heartbeat_at = models.DateTimeField(_("last progress at"), null=True, blank=True)
    undo_until = models.DateTimeField(_("can be undone until"), null=True, blank=True)
    # the client's Idempotency-Key (required for a bulk remedy) and what it stood for
    idempotency_key = models.CharField(_("idempotency key"), max_length=128, blank=True, default="")
    request_hash = models.CharField(_("request hash"), max_length=64, blank=True, default="")

    class Meta:
        verbose_name = _("bulk job")
        verbose_name_plural = _("bulk jobs")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["created_by", "idempotency_key"], condition=~models.Q(idempotency_key=""),
                                    name="bulkjob_idempotency_unique"),
        ]

    def __str__(self) -> str:
        return f"job #{self.pk} {self.kind} {self.status}"

    @property
    def can_undo(self) -> bool:
        """A finished cancel job, inside its undo window (the page offers Undo only then)."""
        from merchants.rules import undo_open

        return (self.kind == self.Kind.CANCEL and self.status == self.Status.DONE
                and undo_open(undo_until=self.undo_until, now=timezone.now()))

    @property
    def processed(self) -> int:
        return self.done_count + self.skipped_count + self.failed_count

    @property
    def percent(self) -> int:
        return 100 if not self.total else min(100, round(100 * self.processed / self.total))


class BulkJobItem(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DONE = "done", _("Done")
        SKIPPED = "skipped", _("Skipped")
        FAILED = "failed", _("Failed")
        UNDONE = "undone", _("Undone")

    # indexed by bulk_item_once_per_job, which leads with it
    job = models.ForeignKey(BulkJob, on_delete=models.CASCADE, db_index=False, related_name="items")
    target_id = models.PositiveBigIntegerField(_("ticket, order or affected buyer id"))
    status = models.CharField(_("status"), max_length=8, choices=Status.choices, default=Status.PENDING)
    result = models.JSONField(_("result"), default=dict, blank=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("bulk job item")
        verbose_name_plural = _("bulk job items")
        constraints = [models.UniqueConstraint(fields=["job", "target_id"], name="bulk_item_once_per_job")]
        indexes = [models.Index(fields=["job", "status", "id"], name="bulk_item_pending")]


class CouponFailure(models.Model):
    """A campaign coupon that failed at the peak (emergency plan: coupon
    failures are compensated). The supervisor registers who was affected,
    previews, and compensates them in one bulk job through the remedy service."""

    class Remedy(models.TextChoices):
        COUPON = "coupon", _("Replacement coupon")
        CASHBACK = "cashback", _("Cashback on the order (a store coupon: from the order's money)")

    code = models.CharField(_("campaign code"), max_length=32, unique=True)
    title = models.CharField(_("title"), max_length=120)
    remedy = models.CharField(_("compensation"), max_length=8, choices=Remedy.choices)
    amount_fen = models.PositiveIntegerField(_("amount (fen)"))
    reason = models.CharField(_("reason"), max_length=255)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    job = models.OneToOneField(BulkJob, on_delete=models.PROTECT, null=True, blank=True, related_name="coupon_failure")

    class Meta:
        verbose_name = _("failed coupon")
        verbose_name_plural = _("failed coupons")
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=models.Q(amount_fen__gte=1), name="couponfailure_amount_positive")]

    def __str__(self) -> str:
        return f"{self.code} {self.title}"


class AffectedBuyer(models.Model):
    """One buyer registered as hit by a failed coupon: compensated at most once."""

    class Source(models.TextChoices):
        CODE = "code", _("Tickets naming the code")
        LIST = "list", _("Uploaded list")
        QUERY = "query", _("Coupon-failure tickets in a period")

    class Outcome(models.TextChoices):
        NONE = "", _("Not yet")
        EXECUTED = "executed", _("Compensated")
        PENDING_APPROVAL = "pending_approval", _("Waiting for approval")
        SKIPPED = "skipped", _("Skipped")
        FAILED = "failed", _("Refused")

    # indexed by affectedbuyer_once_per_failure, which leads with it
    failure = models.ForeignKey(CouponFailure, on_delete=models.CASCADE, db_index=False, related_name="buyers")
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    source = models.CharField(_("found by"), max_length=8, choices=Source.choices)
    # the buyer's coupon-failure ticket (the compensation lands on it) and its order (cashback)
    ticket = models.ForeignKey(Ticket, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    order = models.ForeignKey(Order, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices, blank=True, default="")
    remedy_id = models.PositiveBigIntegerField(_("remedy"), null=True, blank=True)
    detail = models.JSONField(_("detail"), default=dict, blank=True)
    registered_at = models.DateTimeField(_("registered at"), default=timezone.now)
    compensated_at = models.DateTimeField(_("compensated at"), null=True, blank=True)

    class Meta:
        verbose_name = _("affected buyer")
        verbose_name_plural = _("affected buyers")
        ordering = ["failure", "id"]
        constraints = [models.UniqueConstraint(fields=["failure", "buyer"], name="affectedbuyer_once_per_failure")]
        indexes = [models.Index(fields=["failure", "outcome"], name="affectedbuyer_outcome_idx")]

    def __str__(self) -> str:
        return f"buyer {self.buyer_id} of {self.failure_id}"
