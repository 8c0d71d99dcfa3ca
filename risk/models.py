"""Account risk: the detector's review list, the audit of every action taken
on an account, and the recorded check of an owner's registration details.

``risk`` sits above ``compensation`` (``accounts ← merchants ← tickets ←
compensation ← risk``); no app imports it. The account's state itself is
``accounts.User.account_status`` (active / flagged / frozen), which
``compensation`` already reads to route a flagged buyer's remedies to approval.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class RiskHit(models.Model):
    """One account a detector rule caught, waiting for a supervisor's review.

    ``evidence`` keeps what the rule saw, so the review needs no re-query:
    ``{"orders": [{"order_id", "order_no", "placed_at", "hour", "amount_fen"}],
    "slots": [hours of the day], "order_count", "window_hours",
    "last_seen_at", "last_seen_kind" ("login" | "order" | "joined"),
    "reactivated_at", "dormant_days", "thresholds": {...}}``.
    """

    class Rule(models.TextChoices):
        DORMANT_BURST = "dormant_burst", _("Dormant account ordering at many hours")

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        DISMISSED = "dismissed", _("Dismissed")
        ACTIONED = "actioned", _("Actioned")

    # indexed by riskhit_user_rule, which leads with it
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False, related_name="risk_hits"
    )
    rule = models.CharField(_("rule"), max_length=32, choices=Rule.choices)
    evidence = models.JSONField(_("evidence"), default=dict)
    first_order_at = models.DateTimeField(_("first order of the burst"))
    last_order_at = models.DateTimeField(_("last order of the burst"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.OPEN)
    detected_at = models.DateTimeField(_("detected at"), default=timezone.now)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)
    review_note = models.CharField(_("review note"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("risk hit")
        verbose_name_plural = _("risk hits")
        ordering = ["-detected_at", "-id"]
        indexes = [
            models.Index(fields=["status", "-detected_at"], name="riskhit_status_recent"),
            models.Index(fields=["user", "rule", "-last_order_at"], name="riskhit_user_rule"),
        ]
        constraints = [
            # the detector's idempotency: one open hit per account and rule
            models.UniqueConstraint(fields=["user", "rule"], condition=models.Q(status="open"),
                                    name="riskhit_one_open_per_account"),
        ]

    def __str__(self) -> str:
        return f"{self.rule} on {self.user_id} ({self.status})"


class AccountAction(models.Model):
    """The audit line of one risk action on an account: who, when, why, what changed."""

    class Kind(models.TextChoices):
        FLAG = "flag", _("Flagged")
        FREEZE = "freeze", _("Frozen")
        UNFREEZE = "unfreeze", _("Unfrozen after verification")
        CANCEL_ORDERS = "cancel_orders", _("Pending orders cancelled")
        RESTORE_ORDERS = "restore_orders", _("Cancelled orders restored")
        DISMISS_HIT = "dismiss_hit", _("Hit dismissed")

    # indexed by riskaction_user_recent, which leads with it
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False, related_name="risk_actions"
    )
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    hit = models.ForeignKey(RiskHit, on_delete=models.SET_NULL, null=True, blank=True, related_name="actions")
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    data = models.JSONField(_("data"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("account action")
        verbose_name_plural = _("account actions")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="riskaction_user_recent")]

    def __str__(self) -> str:
        return f"{self.kind} on {self.user_id} by {self.actor_id}"


class OwnerVerification(models.Model):
    """An agent checked the caller's registration details against the account.

    The agent types the phone (and e-mail) the caller gives; the service
    compares them with the registered ones and keeps only whether they matched.
    The ID card's last four digits are not stored in the workbench: the agent
    checks them in the real-name system and ticks that they matched. It passes
    when the phone matches and so does the e-mail or the ID's last four. A
    passed check unfreezes the account once (``used_at``), within
    ``VERIFICATION_VALID_FOR`` of ``risk.services.accounts``.
    """

    class Outcome(models.TextChoices):
        PASSED = "passed", _("Passed")
        FAILED = "failed", _("Failed")

    # indexed by verification_user_recent, which leads with it
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, db_index=False, related_name="owner_verifications"
    )
    checked_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    phone_matched = models.BooleanField(_("registered phone matched"), default=False)
    email_matched = models.BooleanField(_("registered e-mail matched"), default=False)
    id_last4_confirmed = models.BooleanField(_("ID card's last four digits confirmed"), default=False)
    outcome = models.CharField(_("outcome"), max_length=8, choices=Outcome.choices)
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("checked at"), default=timezone.now)
    used_at = models.DateTimeField(_("used to unfreeze at"), null=True, blank=True)

    class Meta:
        verbose_name = _("owner verification")
        verbose_name_plural = _("owner verifications")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="verification_user_recent")]

    def __str__(self) -> str:
        return f"verification of {self.user_id}: {self.outcome}"
