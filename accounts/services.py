from __future__ import annotations

import hashlib
import ipaddress
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from accounts import roles
from accounts.models import ApiToken, LockoutRelease, LoginEvent, User
from accounts.roles import ROLE_PERMISSIONS, ensure_role_groups
from core.errors import InvalidInput, PermissionDenied

logger = logging.getLogger(__name__)


@transaction.atomic
def create_user(
    *, username: str, password: str | None, role: str, display_name: str = "", email: str = "", phone: str = ""
) -> User:
    """Create a user in exactly one role group (``password=None``: unusable until set)."""
    if role not in ROLE_PERMISSIONS:
        raise InvalidInput(f"Unknown role {role!r}.")
    user = User.objects.create_user(
        username=username, password=password, display_name=display_name, email=email, phone=phone
    )
    set_role(user=user, role=role)
    return user


@transaction.atomic
def set_role(*, user: User, role: str) -> User:
    """Put the user in one role group, leaving every other role group."""
    if role not in ROLE_PERMISSIONS:
        raise InvalidInput(f"Unknown role {role!r}.")
    if not Group.objects.filter(name=role).exists():
        ensure_role_groups()
    user.groups.remove(*Group.objects.filter(name__in=ROLE_PERMISSIONS.keys()).exclude(name=role))
    user.groups.add(Group.objects.get(name=role))
    # drop the cached permissions of this instance
    for attr in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(attr, None)
    roles.forget(user)
    return user


def record_login(*, user: User, ip: str | None, device: str, source: str, now: datetime | None = None) -> LoginEvent:
    """Write one line of the login history (session logins and token exchanges)."""
    if source not in LoginEvent.Source.values:
        raise InvalidInput(f"Unknown login source {source!r}.")
    return LoginEvent.objects.create(user=user, at=now or timezone.now(), ip=ip or None, device=(device or "")[:128],
                                     source=source)


# --- API tokens -------------------------------------------------------------


@dataclass(frozen=True)
class IssuedToken:
    key: str  # shown once; only its digest is stored
    token: ApiToken

    @property
    def expires_at(self) -> datetime | None:
        return self.token.expires_at


def token_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def token_lifetime(user: User) -> timedelta | None:
    """How long a new token of this user lives (``API_TOKEN_TTL_HOURS`` by
    role; a user without a role gets the staff lifetime); None: no expiry."""
    ttl = settings.API_TOKEN_TTL_HOURS
    hours = ttl.get(roles.role_of(user) or roles.AGENT, ttl[roles.AGENT])
    return timedelta(hours=hours) if hours else None


@transaction.atomic
def issue_api_token(*, user: User, now: datetime | None = None) -> IssuedToken:
    """A new key for the user (earlier ones stay valid until they expire or
    are revoked); the user's expired tokens are swept on the way."""
    now = now or timezone.now()
    ApiToken.objects.filter(user=user, expires_at__lte=now).delete()
    key = secrets.token_hex(20)
    lifetime = token_lifetime(user)
    token = ApiToken.objects.create(user=user, digest=token_digest(key), prefix=key[:6], created_at=now,
                                    expires_at=now + lifetime if lifetime else None)
    return IssuedToken(key=key, token=token)


@transaction.atomic(durable=True)
def log_in_for_token(*, user: User, ip: str | None, device: str) -> IssuedToken:
    """A password login on the API: a new token and the login history line."""
    issued = issue_api_token(user=user)
    record_login(user=user, ip=ip, device=device, source=LoginEvent.Source.TOKEN, now=issued.token.created_at)
    return issued


def revoke_api_token(*, token: ApiToken) -> None:
    """Logout: this token stops working at once (the user's others do not)."""
    ApiToken.objects.filter(pk=token.pk).delete()


# --- login lockouts -----------------------------------------------------------


@transaction.atomic(durable=True)
def lift_lockout(*, actor: User, username: str = "", ip: str | None = None) -> LockoutRelease:
    """A supervisor lifts a login lockout: django-axes' failure records of the
    account, of the address, or (both given) of either, are cleared, and the
    release is written down."""
    from axes.handlers.proxy import AxesProxyHandler

    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only supervisors lift login lockouts.")
    username = (username or "").strip()
    if len(username) > 150:
        raise InvalidInput("The username is at most 150 characters.", field="username")
    if ip:
        try:
            ip = str(ipaddress.ip_address(str(ip).strip()))
        except ValueError:
            raise InvalidInput("Not an IP address.", field="ip") from None
    if not username and not ip:
        raise InvalidInput("Give a username, an IP address or both.")
    cleared = AxesProxyHandler.reset_attempts(ip_address=ip or None, username=username or None,
                                              ip_or_username=bool(username and ip))
    release = LockoutRelease.objects.create(actor=actor, username=username, ip=ip or None, cleared=cleared)
    logger.warning("login lockout lifted by %s: username=%r ip=%r (%d records)", actor.username, username, ip,
                   cleared)
    return release
