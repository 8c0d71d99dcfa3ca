"""The role every template reads (accounts.context_processors)."""

import pytest

from accounts import roles
from accounts.tests.factories import UserFactory


@pytest.mark.django_db
def test_templates_read_the_role_from_the_role_groups_not_from_perms(django_assert_max_num_queries):
    """``role`` in every template (accounts.context_processors): the flags come
    from the cached role groups, and asking all of them costs one query at most."""
    from accounts.context_processors import Role

    for name, expected in ((roles.HEAD, (True, True, True, False)), (roles.SUPERVISOR, (False, True, True, False)),
                           (roles.AGENT, (False, False, True, False)), (roles.MERCHANT_STAFF, (False, False, False, True))):
        user = UserFactory(role=name)
        roles.forget(user)
        with django_assert_max_num_queries(1):
            role = Role(user)
            assert (role.head, role.supervisor, role.agent, role.merchant) == expected
