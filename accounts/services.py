from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from accounts.models import LoginEvent, User
from accounts.roles import ROLE_PERMISSIONS, ensure_role_groups
from core.errors import InvalidInput


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
    return user


def record_login(*, user: User, ip: str | None, device: str, source: str, now: datetime | None = None) -> LoginEvent:
    """Write one line of the login history (session logins and token exchanges)."""
    if source not in LoginEvent.Source.values:
        raise InvalidInput(f"Unknown login source {source!r}.")
    return LoginEvent.objects.create(user=user, at=now or timezone.now(), ip=ip or None, device=(device or "")[:128],
                                     source=source)
