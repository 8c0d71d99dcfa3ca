"""Roles are read once per user object and cached between requests; any
change of a user's groups is seen at once."""

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import roles
from accounts.models import User
from accounts.services import set_role
from accounts.tests.factories import UserFactory


@pytest.mark.django_db
def test_roles_cost_no_query_once_cached_and_follow_every_change():
    user = UserFactory(role=roles.AGENT)
    assert roles.is_agent(User.objects.get(pk=user.pk))  # warms the shared cache
    fresh = User.objects.get(pk=user.pk)
    with CaptureQueriesContext(connection) as queries:
        assert roles.is_agent(fresh) and not roles.is_supervisor(fresh) and not roles.is_buyer(fresh)
    assert len(queries) == 0
    # promoted through the service
    set_role(user=user, role=roles.SUPERVISOR)
    assert roles.is_supervisor(User.objects.get(pk=user.pk))
    # demoted in the admin's way: the group edited directly
    Group.objects.get(name=roles.SUPERVISOR).user_set.remove(user)
    assert not roles.is_agent(User.objects.get(pk=user.pk))
    Group.objects.get(name=roles.BUYER).user_set.add(user)
    assert roles.is_buyer(User.objects.get(pk=user.pk))
    Group.objects.get(name=roles.BUYER).user_set.clear()
    assert roles.role_of(User.objects.get(pk=user.pk)) is None
    # an inactive agent is no agent, whatever the cache says
    User.objects.filter(pk=user.pk).update(is_active=False)
    set_role(user=user, role=roles.AGENT)
    assert not roles.is_agent(User.objects.get(pk=user.pk))
