"""Roles are groups with permissions (``ROLE_PERMISSIONS``, kept by
``ensure_role_groups``); these helpers ask for the role's permission.

They read the user's role groups in one query, cached on the user object for
the request; Django's ``has_perm`` would cost two queries with joins on every
request, the largest part of an API call's database time. A permission given
to a user directly, outside a role group, makes no role.
"""

from __future__ import annotations

import json

from django.contrib.auth.models import Group, Permission

from core.rows import column, table

BUYER = "buyer"
AGENT = "agent"
SUPERVISOR = "supervisor"
# the head of service (负责人): owns grade-1 tickets and incidents and the
# "all levels" tier at the top of the ladder; a supervisor with more
HEAD = "head"
MERCHANT_STAFF = "merchant_staff"
# a machine account of the platform (the order system, carrier feeds): it calls
# the integration endpoints with its own token and nothing else
INTEGRATION = "integration"

PERM_BUYER = "accounts.act_as_buyer"
PERM_AGENT = "accounts.work_tickets"
PERM_SUPERVISOR = "accounts.supervise"
PERM_HEAD = "accounts.head_service"
PERM_MERCHANT = "accounts.act_for_merchant"
PERM_INTEGRATION = "accounts.integrate"

ROLE_PERMISSIONS: dict[str, list[str]] = {
    BUYER: ["act_as_buyer"],
    AGENT: ["work_tickets"],
    SUPERVISOR: ["work_tickets", "supervise"],
    HEAD: ["work_tickets", "supervise", "head_service"],
    MERCHANT_STAFF: ["act_for_merchant"],
    INTEGRATION: ["integrate"],
}


ROLE_CACHE_ATTR = "_role_perm_cache"
ROLE_CACHE_TIMEOUT_S = 300


def _cache_key(user_id: int) -> str:
    return f"accounts:role-groups:{user_id}"


def role_permissions(user) -> frozenset[str]:
    """The ``app.codename`` permissions the user holds through role groups:
    from this user object, else the shared cache (one Redis read in
    production), else one query. ``forget`` drops both after a change of
    groups (``accounts.apps`` calls it whenever a user's groups change)."""
    cached = user.__dict__.get(ROLE_CACHE_ATTR)
    if cached is None:
        from django.core.cache import cache

        names = cache.get(_cache_key(user.pk))
        if names is None:
            names = sorted(user.groups.values_list("name", flat=True))
            cache.set(_cache_key(user.pk), names, timeout=ROLE_CACHE_TIMEOUT_S)
        cached = remember_role_groups(user, names)
    return cached


def remember_role_groups(user, names) -> frozenset[str]:
    """Hold the permissions of the groups ``names`` on this user object for
    the request, as ``role_permissions`` does after its read. For a user read
    together with its groups (``role_groups_column``), so that the request
    makes no cache read and no query for them."""
    held = frozenset(f"accounts.{codename}" for name in names for codename in ROLE_PERMISSIONS.get(name, ()))
    user.__dict__[ROLE_CACHE_ATTR] = held
    return held


def remember_role_group_names(user, value) -> None:
    """``remember_role_groups`` from a ``role_groups_column`` value."""
    remember_role_groups(user, role_group_names(value))


def role_groups_column(user_alias: str, vendor: str) -> str:
    """For a hand-written statement over the user table (under the alias
    ``user_alias``): a column holding the names of the user's groups, as a
    JSON array; ``role_group_names`` reads its value."""
    from django.contrib.auth import get_user_model  # the app registry is ready by the first statement

    user_model = get_user_model()
    through = user_model.groups.through
    aggregate = {"postgresql": "json_agg", "sqlite": "json_group_array"}[vendor]
    return (f"(SELECT {aggregate}({column(Group, 'name', 'g')}) FROM {table(through)} ug "
            f"JOIN {table(Group)} g ON {column(Group, 'id', 'g')} = {column(through, 'group', 'ug')} "
            f"WHERE {column(through, 'user', 'ug')} = {column(user_model, user_model._meta.pk.name, user_alias)})")


def role_group_names(value) -> list[str]:
    """The value of ``role_groups_column``: PostgreSQL's JSON arrives as a
    list (NULL without groups), SQLite's as text."""
    if value is None:
        return []
    return json.loads(value) if isinstance(value, str) else list(value)


def forget(user=None, *, user_id: int | None = None) -> None:
    """After a change of a user's groups: this object and the shared cache
    (now and again once the change commits, so a read in between cannot
    leave the old groups cached)."""
    from django.core.cache import cache
    from django.db import transaction

    if user is not None:
        user.__dict__.pop(ROLE_CACHE_ATTR, None)
        user_id = user.pk
    if user_id is not None:
        key = _cache_key(user_id)
        cache.delete(key)
        transaction.on_commit(lambda: cache.delete(key))


def _holds(user, perm: str, *, active: bool) -> bool:
    if not (user and user.is_authenticated) or (active and not user.is_active):
        return False
    if user.is_superuser and user.is_active:
        return True
    return perm in role_permissions(user)


def is_buyer(user) -> bool:
    return _holds(user, PERM_BUYER, active=False)


def is_agent(user) -> bool:
    """Agents and supervisors: the staff who work tickets."""
    return _holds(user, PERM_AGENT, active=True)


def is_supervisor(user) -> bool:
    return _holds(user, PERM_SUPERVISOR, active=True)


def is_merchant_staff(user) -> bool:
    return _holds(user, PERM_MERCHANT, active=False)


def is_integration(user) -> bool:
    """The platform's own systems (order system, carrier feeds) by their token."""
    return _holds(user, PERM_INTEGRATION, active=True)


def is_head(user) -> bool:
    return _holds(user, PERM_HEAD, active=True)


# The staff ladder: an agent (1), a team lead (the supervisor role, 2), the
# head (3). ``tickets.rules`` maps a ticket's tier to the rank that owns it.
RANK_AGENT = 1
RANK_TEAM_LEAD = 2
RANK_HEAD = 3


def staff_rank(user) -> int:
    """Where the user stands on the staff ladder; 0 for anyone not staff. An
    active superuser stands with the head."""
    if is_head(user):
        return RANK_HEAD
    if is_supervisor(user):
        return RANK_TEAM_LEAD
    if is_agent(user):
        return RANK_AGENT
    return 0


def role_of(user) -> str | None:
    if is_head(user):
        return HEAD
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
