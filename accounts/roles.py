"""Roles are groups with permissions; these helpers ask the permission.

``user.has_perm`` caches a user's permissions on the user object, so asking
several times in one request costs one query.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

BUYER = "buyer"
AGENT = "agent"
SUPERVISOR = "supervisor"
MERCHANT_STAFF = "merchant_staff"
# a machine account of the platform (the order system, carrier feeds): it calls
# the integration endpoints with its own token and nothing else
INTEGRATION = "integration"

PERM_BUYER = "accounts.act_as_buyer"
PERM_AGENT = "accounts.work_tickets"
PERM_SUPERVISOR = "accounts.supervise"
PERM_MERCHANT = "accounts.act_for_merchant"
PERM_INTEGRATION = "accounts.integrate"

ROLE_PERMISSIONS: dict[str, list[str]] = {
    BUYER: ["act_as_buyer"],
    AGENT: ["work_tickets"],
    SUPERVISOR: ["work_tickets", "supervise"],
    MERCHANT_STAFF: ["act_for_merchant"],
    INTEGRATION: ["integrate"],
}


def is_buyer(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(PERM_BUYER))


def is_agent(user) -> bool:
    """Agents and supervisors: the staff who work tickets."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(PERM_AGENT))


def is_supervisor(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(PERM_SUPERVISOR))


def is_merchant_staff(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(PERM_MERCHANT))


def is_integration(user) -> bool:
    """The platform's own systems (order system, carrier feeds) by their token."""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(PERM_INTEGRATION))


def role_of(user) -> str | None:
    if is_supervisor(user):
        return SUPERVISOR
    if is_agent(user):
        return AGENT
    if is_merchant_staff(user):
        return MERCHANT_STAFF
    if is_integration(user):
        return INTEGRATION
    if is_buyer(user):
        return BUYER
    return None


def ensure_role_groups() -> dict[str, Group]:
    """Create the role groups with their permissions (idempotent)."""
    groups = {}
    perms = {p.codename: p for p in Permission.objects.filter(content_type__app_label="accounts")}
    for role, codenames in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=role)
        group.permissions.set([perms[c] for c in codenames])
        groups[role] = group
    return groups
