from django.contrib.auth.models import AbstractUser
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """Everyone who signs in: buyers, agents, supervisors and merchant staff.

    What a user may do comes from the role groups (see ``accounts.roles``);
    ``display_name`` is the name people see (Chinese names do not split into
    first and last the way ``AbstractUser`` assumes).
    """

    class AccountStatus(models.TextChoices):
        ACTIVE = "active", _("Active")
        FLAGGED = "flagged", _("Flagged")
        FROZEN = "frozen", _("Frozen")

    display_name = models.CharField(_("display name"), max_length=64, blank=True)
    # indexed: the hotline finds the caller by it (tickets.selectors.callers)
    phone = models.CharField(_("phone"), max_length=32, blank=True, db_index=True)
    language = models.CharField(_("language"), max_length=8, default="zh-hans")
    account_status = models.CharField(
        _("account status"), max_length=16, choices=AccountStatus.choices, default=AccountStatus.ACTIVE
    )

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")
        permissions = [
            ("act_as_buyer", "Can open tickets and chats as a buyer"),
            ("work_tickets", "Can work tickets as an agent"),
            ("supervise", "Can supervise agents and tickets"),
            ("head_service", "Can own grade-1 and all-levels tickets and incidents as the head of service"),
            ("act_for_merchant", "Can act for a merchant in the merchant portal"),
            ("integrate", "Can call the platform's integration endpoints (order system, carrier feeds)"),
        ]

    def __str__(self) -> str:
        return self.display_name or self.username

    @property
    def name(self) -> str:
        return self.display_name or self.get_full_name() or self.username

    def save(self, *args, **kwargs) -> None:
        # A new password (``set_password`` then ``save``: the password change
        # form, the admin, ``changepassword``) revokes every API token the user
        # holds. ``check_password``'s rehash clears ``_password`` before it
        # saves, so upgrading a hash revokes nothing.
        password_changed = self._password is not None and not self._state.adding
        super().save(*args, **kwargs)
        if password_changed:
            ApiToken.objects.filter(user=self).delete()


class LoginEvent(models.Model):
    """One sign-in (a session login or a token exchange): when, from which IP
    and device. Append-only; ``risk`` judges dormant accounts by it."""

    class Source(models.TextChoices):
        SESSION = "session", _("Browser session")
        TOKEN = "token", _("API token")

    # indexed by login_user_recent, which leads with it
    user = models.ForeignKey(User, on_delete=models.CASCADE, db_index=False, related_name="login_events")
    at = models.DateTimeField(_("at"), default=timezone.now)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    device = models.CharField(_("device"), max_length=128, blank=True,
                              help_text="X-Device-Id, else ua:<hash of the user agent>")
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)

    class Meta:
        verbose_name = _("login event")
        verbose_name_plural = _("login events")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["user", "-at"], name="login_user_recent")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.source} {self.at:%Y-%m-%d %H:%M}"


class ApiToken(models.Model):
    """One API key a user holds: a new one per login, so several devices may
    hold one each. Only the key's SHA-256 is stored (the key itself is shown
    once, in the login answer); ``expires_at`` is null for a token that never
    expires (the integration account's). Logout deletes the token; a new
    password deletes all of the user's (``User.save``)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    digest = models.CharField(_("key digest"), max_length=64, unique=True, editable=False)
    prefix = models.CharField(_("key prefix"), max_length=8, editable=False,
                              help_text="The key's first characters, to tell tokens apart")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    class Meta:
        verbose_name = _("API token")
        verbose_name_plural = _("API tokens")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.user_id})"

    def is_expired(self, now=None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


class LockoutRelease(models.Model):
    """The audit line of a supervisor lifting a login lockout (django-axes'
    failure records for an account, an address or both). Append-only."""

    actor = models.ForeignKey(User, on_delete=models.PROTECT, related_name="+")
    username = models.CharField(_("username"), max_length=150, blank=True)
    ip = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    cleared = models.PositiveIntegerField(_("failure records cleared"), default=0)
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("lockout release")
        verbose_name_plural = _("lockout releases")
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.username or '-'} / {self.ip or '-'} by {self.actor_id}"
