"""Remedies and what caps them: policy, budget day, quotas, blacklist, ledger."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import ConcurrentTransitionMixin, FSMField, FSMModelMixin, transition

from compensation.rules import remedy_cost
from merchants.models import Order
from tickets.models import Ticket


class Policy(models.Model):
    """The caps of self-service; one row (pk=1). Changes are kept in ``PolicyChange``."""

    value_cap_fen = models.BigIntegerField(_("self-service order value cap (fen)"), default=5_000)
    coupon_fen = models.BigIntegerField(_("coupon value (fen)"), default=500)
    # a coupon of any other value needs a supervisor; none is ever worth more than this
    coupon_max_fen = models.BigIntegerField(_("largest coupon (fen)"), default=10_000)
    coupon_days = models.PositiveSmallIntegerField(_("coupon valid for (days)"), default=30)
    agent_monthly_quota = models.PositiveIntegerField(_("agent monthly self-service quota"), default=60)
    buyer_daily_cap = models.PositiveIntegerField(_("remedies per buyer per day"), default=2)
    daily_budget_fen = models.BigIntegerField(_("daily compensation budget (fen)"), default=1_000_000)
    # the automatic blacklist (campaign control plan): counts over the last
    # ``blacklist_window_days`` days put an account, IP or device on the list
    # for ``blacklist_entry_days`` days
    blacklist_window_days = models.PositiveSmallIntegerField(_("blacklist: counting window (days)"), default=3)
    blacklist_entry_days = models.PositiveSmallIntegerField(_("blacklist: entry lasts (days)"), default=7)
    blacklist_max_remedies = models.PositiveIntegerField(_("blacklist: most remedies in the window"), default=3)
    blacklist_max_tickets = models.PositiveIntegerField(_("blacklist: most tickets in the window"), default=5)
    blacklist_max_accounts = models.PositiveIntegerField(_("blacklist: most accounts per IP or device"), default=5)
    # the stolen-account loop: a failed owner verification freezes the account at once
    freeze_on_failed_verification = models.BooleanField(_("freeze on a failed owner verification"), default=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("policy")
        verbose_name_plural = _("policy")
        constraints = [
            models.CheckConstraint(condition=models.Q(value_cap_fen__gte=0), name="policy_value_cap_non_negative"),
            models.CheckConstraint(condition=models.Q(coupon_fen__gt=0), name="policy_coupon_positive"),
            models.CheckConstraint(condition=models.Q(coupon_max_fen__gte=models.F("coupon_fen")),
                                   name="policy_coupon_max_covers_coupon"),
            models.CheckConstraint(condition=models.Q(daily_budget_fen__gte=0), name="policy_budget_non_negative"),
            models.CheckConstraint(condition=models.Q(blacklist_window_days__gte=1, blacklist_entry_days__gte=1),
                                   name="policy_blacklist_days_positive"),
        ]

    def __str__(self) -> str:
        return "compensation policy"


class PolicyChange(models.Model):
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changes = models.JSONField(_("changes"), help_text="{field: [before, after]}")
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("policy change")
        verbose_name_plural = _("policy changes")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"policy change by {self.changed_by} at {self.created_at:%Y-%m-%d %H:%M}"


class BudgetDay(models.Model):
    """The day's compensation spend against its budget, and the breaker."""

    date = models.DateField(_("date"), unique=True)
    budget_fen = models.BigIntegerField(_("budget (fen)"))
    spent_fen = models.BigIntegerField(_("spent (fen)"), default=0)
    breaker_open = models.BooleanField(_("breaker open"), default=False)
    breaker_opened_at = models.DateTimeField(_("breaker opened at"), null=True, blank=True)

    class Meta:
        verbose_name = _("budget day")
        verbose_name_plural = _("budget days")
        ordering = ["-date"]
        constraints = [models.CheckConstraint(condition=models.Q(spent_fen__gte=0), name="budget_spent_non_negative")]

    def __str__(self) -> str:
        return f"{self.date}: {self.spent_fen}/{self.budget_fen}"


class BreakerReset(models.Model):
    budget_day = models.ForeignKey(BudgetDay, on_delete=models.CASCADE, related_name="resets")
    reset_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(_("reason"), max_length=255)
    spent_fen = models.BigIntegerField(_("spent when reset (fen)"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("breaker reset")
        verbose_name_plural = _("breaker resets")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"breaker reset {self.created_at:%Y-%m-%d %H:%M} by {self.reset_by}"


class AgentQuota(models.Model):
    """An agent's self-service remedies in one month (``period`` = YYYY-MM).
    The limit is the policy's quota in force at each request, not a copy."""

    # indexed by quota_agent_period_unique, which leads with it
    agent = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False, related_name="remedy_quotas"
    )
    period = models.CharField(_("period"), max_length=7)
    used = models.PositiveIntegerField(_("used"), default=0)

    class Meta:
        verbose_name = _("agent quota")
        verbose_name_plural = _("agent quotas")
        constraints = [models.UniqueConstraint(fields=["agent", "period"], name="quota_agent_period_unique")]

    def __str__(self) -> str:
        return f"{self.agent} {self.period}: {self.used} used"


class BuyerCounter(models.Model):
    """Remedies a buyer received on one day."""

    # indexed by buyercounter_unique, which leads with it
    buyer = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False, related_name="remedy_counters"
    )
    date = models.DateField(_("date"))
    count = models.PositiveIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("buyer counter")
        verbose_name_plural = _("buyer counters")
        constraints = [models.UniqueConstraint(fields=["buyer", "date"], name="buyercounter_unique")]

    def __str__(self) -> str:
        return f"{self.buyer} {self.date}: {self.count}"


class BlacklistEntry(models.Model):
    class Kind(models.TextChoices):
        ACCOUNT = "account", _("Account")
        IP = "ip", _("IP address")
        DEVICE = "device", _("Device")

    class Source(models.TextChoices):
        MANUAL = "manual", _("Added by hand")
        DAILY_COUNTS = "daily_counts", _("From daily counts")
        ROLLING_COUNTS = "rolling_counts", _("From counts over the window")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    value = models.CharField(_("value"), max_length=128)
    reason = models.CharField(_("reason"), max_length=255)
    window_days = models.PositiveSmallIntegerField(_("window (days)"), default=7)
    expires_at = models.DateTimeField(_("expires at"))
    source = models.CharField(_("source"), max_length=16, choices=Source.choices, default=Source.MANUAL)
    # what tripped an automatic entry: {"window_days", "since", "counts": {...}, "limits": {...}, "tripped": [...]}
    counts = models.JSONField(_("counts that tripped it"), default=dict, blank=True)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("blacklist entry")
        verbose_name_plural = _("blacklist")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["kind", "value", "expires_at"], name="blacklist_lookup")]

    def __str__(self) -> str:
        return f"{self.kind}:{self.value} until {self.expires_at:%Y-%m-%d}"


class Remedy(ConcurrentTransitionMixin, FSMModelMixin, models.Model):
    class Kind(models.TextChoices):
        REFUND = "refund", _("Refund")
        RESEND = "resend", _("Resend")
        COUPON = "coupon", _("Coupon")

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        PENDING_APPROVAL = "pending_approval", _("Pending approval")
        APPROVED = "approved", _("Approved")
        EXECUTED = "executed", _("Executed")
        REJECTED = "rejected", _("Rejected")
        FAILED = "failed", _("Failed")

    ticket = models.ForeignKey(Ticket, on_delete=models.PROTECT, related_name="remedies")
    # indexed by remedy_order_status, which leads with it
    order = models.ForeignKey(
        Order, on_delete=models.PROTECT, db_index=False, null=True, blank=True, related_name="remedies"
    )
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="remedies_received")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="remedies_requested")
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    amount_fen = models.BigIntegerField(_("refund or coupon amount (fen)"), default=0)
    with_coupon = models.BooleanField(_("with a coupon"), default=False)
    coupon_fen = models.BigIntegerField(_("coupon value (fen)"), default=0)
    reason = models.CharField(_("reason"), max_length=255)
    status = FSMField(_("status"), max_length=20, choices=Status.choices, default=Status.REQUESTED, protected=True)
    approval_reasons = models.JSONField(_("why approval is needed"), default=list, blank=True)
    self_service = models.BooleanField(_("self-service"), default=False)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decision_reason = models.CharField(_("decision reason"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    executed_at = models.DateTimeField(_("executed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("remedy")
        verbose_name_plural = _("remedies")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="remedy_status_created"),
            models.Index(fields=["order", "status"], name="remedy_order_status"),
            # the reports: remedies executed in a period
            models.Index(fields=["executed_at"], condition=models.Q(status="executed"), name="remedy_executed"),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_fen__gte=0), name="remedy_amount_non_negative"),
            models.CheckConstraint(condition=models.Q(coupon_fen__gte=0), name="remedy_coupon_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def cost_fen(self) -> int:
        """What the remedy spends of the day's compensation budget."""
        return remedy_cost(kind=self.kind, amount_fen=self.amount_fen, with_coupon=self.with_coupon,
                           coupon_fen=self.coupon_fen)

    # transitions only set fields; compensation.services runs them
    @transition(field=status, source=Status.REQUESTED, target=Status.PENDING_APPROVAL)
    def route_to_approval(self, *, reasons: list[str]) -> None:
        self.approval_reasons = reasons

    @transition(field=status, source=Status.REQUESTED, target=Status.APPROVED)
    def auto_approve(self) -> None:
        self.self_service = True

    @transition(field=status, source=Status.PENDING_APPROVAL, target=Status.APPROVED)
    def approve(self, *, by, reason: str, now) -> None:
        self.decided_by, self.decision_reason, self.decided_at = by, reason, now

    @transition(field=status, source=Status.PENDING_APPROVAL, target=Status.REJECTED)
    def reject(self, *, by, reason: str, now) -> None:
        self.decided_by, self.decision_reason, self.decided_at = by, reason, now

    @transition(field=status, source=Status.APPROVED, target=Status.EXECUTED)
    def execute(self, *, now) -> None:
        self.executed_at = now


class RemedyEvent(models.Model):
    remedy = models.ForeignKey(Remedy, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(_("kind"), max_length=32)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    data = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("remedy event")
        verbose_name_plural = _("remedy events")
        ordering = ["remedy", "id"]

    def __str__(self) -> str:
        return f"{self.kind} on remedy #{self.remedy_id}"


class Coupon(models.Model):
    # unique by coupon_code_unique: a constraint rather than unique=True, which on
    # PostgreSQL adds a second index for LIKE 'prefix%' that no query uses and
    # every remedy's coupon would write
    code = models.CharField(_("code"), max_length=20)
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="coupons")
    remedy = models.ForeignKey(Remedy, on_delete=models.PROTECT, related_name="coupons")
    value_fen = models.BigIntegerField(_("value (fen)"))
    threshold_fen = models.BigIntegerField(_("minimum spend (fen)"), default=0)
    issued_at = models.DateTimeField(_("issued at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"))

    class Meta:
        verbose_name = _("coupon")
        verbose_name_plural = _("coupons")
        ordering = ["-issued_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(value_fen__gt=0), name="coupon_value_positive"),
            models.UniqueConstraint(fields=["code"], name="coupon_code_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.code} {self.value_fen}"


class IdempotencyRecord(models.Model):
    """A request's key and its first answer, in the same transaction as its effect."""

    scope = models.CharField(_("scope"), max_length=64)
    key = models.CharField(_("key"), max_length=128)
    request_hash = models.CharField(_("request hash"), max_length=64)
    status_code = models.PositiveSmallIntegerField(_("status code"))
    response = models.JSONField(_("response"))
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("idempotency record")
        verbose_name_plural = _("idempotency records")
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="idempotency_scope_key_unique")]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"


class LedgerHead(models.Model):
    """The end of one hash chain of the ledger (``compensation/ledger.py``);
    locked by each remedy appending to that chain."""

    chain = models.PositiveSmallIntegerField(_("chain"), unique=True)
    last_hash = models.CharField(_("last hash"), max_length=64, default="0" * 64)
    entries = models.PositiveBigIntegerField(_("entries"), default=0)

    class Meta:
        verbose_name = _("ledger head")
        verbose_name_plural = _("ledger heads")
        ordering = ["chain"]

    def __str__(self) -> str:
        return f"ledger chain {self.chain} after {self.entries} entries"


class LedgerEntry(models.Model):
    """Append-only, balanced per remedy, each chained to the previous by hash."""

    remedy = models.ForeignKey(Remedy, on_delete=models.PROTECT, related_name="ledger_entries")
    chain = models.PositiveSmallIntegerField(_("chain"), default=0)
    account = models.CharField(_("account"), max_length=64)
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    memo = models.CharField(_("memo"), max_length=128, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    prev_hash = models.CharField(_("previous hash"), max_length=64)
    hash = models.CharField(_("hash"), max_length=64)  # unique by ledger_hash_unique (as Coupon.code)

    class Meta:
        verbose_name = _("ledger entry")
        verbose_name_plural = _("ledger entries")
        ordering = ["id"]
        indexes = [models.Index(fields=["chain", "id"], name="ledger_chain_order")]
        constraints = [
            models.CheckConstraint(condition=~models.Q(amount_fen=0), name="ledger_amount_nonzero"),
            models.UniqueConstraint(fields=["hash"], name="ledger_hash_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.amount_fen:+d} (remedy #{self.remedy_id})"
