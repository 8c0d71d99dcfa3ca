"""The viewer's role for every template, from ``accounts.roles``.

Templates ask ``role.supervisor`` instead of Django's ``perms.accounts.supervise``:
``perms`` goes through the auth backend (two joined permission queries per
page), while the role helpers read the user's role groups once, cached
between requests. Each flag is computed on first use only.
"""

from __future__ import annotations

from functools import cached_property

from accounts import roles


class Role:
    def __init__(self, user) -> None:
        self._user = user

    @cached_property
    def supervisor(self) -> bool:
        return roles.is_supervisor(self._user)

    @cached_property
    def agent(self) -> bool:
        return roles.is_agent(self._user)

    @cached_property
    def head(self) -> bool:
        return roles.is_head(self._user)

    @cached_property
    def merchant(self) -> bool:
        return roles.is_merchant_staff(self._user)


def role(request) -> dict:
    return {"role": Role(getattr(request, "user", None))}
