"""Fixtures every app's tests share: one user per role, API clients, eager jobs."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts import roles
from accounts.tests.factories import UserFactory
from merchants.tests.factories import MerchantFactory, OrderFactory, ShipmentFactory, make_merchant_staff


@pytest.fixture(scope="session", autouse=True)
def _chat_writers_closed_at_the_end(django_db_setup):
    """The chat writers' threads keep a database connection between batches:
    give them back before the test database is dropped (set up after it, so
    torn down before it)."""
    yield
    from tickets.chat_writer import close_writers

    close_writers()


@pytest.fixture(autouse=True)
def _jobs_inline(settings):
    """Background jobs run inline in tests (Celery eager), as in the embedded default."""
    from cs_portal.celery import app

    app.conf.task_always_eager = True
    app.conf.task_eager_propagates = True
    settings.CELERY_TASK_ALWAYS_EAGER = True
    # a fast hasher: password hashing is not what these tests measure
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _login_throttle_per_test(monkeypatch):
    """The token endpoint's rate limit counts in a cache of each test's own:
    with Redis the shared cache would carry one test's logins into the next."""
    from django.core.cache.backends.locmem import LocMemCache

    from accounts.api import LoginThrottle

    cache = LocMemCache("login-throttle-test", {})
    cache.clear()
    monkeypatch.setattr(LoginThrottle, "cache", cache)


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts with an empty cache (routing rules, throttles): a test's
    rolled-back rows must not live on in another's cache."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def daytime(monkeypatch):
    """The clock moved to 15:00 local time today (and still running).

    Shift figures count today's work only, so a test that needs "7 hours worked
    today" cannot pass in the first hours after local midnight; with this it
    runs the same at any hour CI starts. Model field defaults keep the real
    clock (they hold the function itself), which these tests do not rely on.
    """
    from django.utils import timezone

    real_now = timezone.now
    local = timezone.localtime(real_now())
    offset = local.replace(hour=15, minute=0, second=0, microsecond=0) - local
    monkeypatch.setattr(timezone, "now", lambda: real_now() + offset)
    return offset


@pytest.fixture
def buyer(db):
    return UserFactory(role=roles.BUYER, username="buyer_a", display_name="林晓雨")


@pytest.fixture
def other_buyer(db):
    return UserFactory(role=roles.BUYER, username="buyer_b", display_name="黄志强")


@pytest.fixture
def agent(db):
    return UserFactory(role=roles.AGENT, username="agent_a", display_name="王芳")


@pytest.fixture
def other_agent(db):
    return UserFactory(role=roles.AGENT, username="agent_b", display_name="李娜")


@pytest.fixture
def supervisor(db):
    return UserFactory(role=roles.SUPERVISOR, username="lead_a", display_name="赵敏")


@pytest.fixture
def merchant(db):
    return MerchantFactory(name="优品数码旗舰店")


@pytest.fixture
def other_merchant(db):
    return MerchantFactory(name="江南丝绸家纺")


@pytest.fixture
def merchant_user(merchant):
    return make_merchant_staff(merchant, username="merchant_a")


@pytest.fixture
def other_merchant_user(other_merchant):
    return make_merchant_staff(other_merchant, username="merchant_b")


@pytest.fixture
def order(buyer, merchant):
    order = OrderFactory(buyer=buyer, merchant=merchant)
    ShipmentFactory(order=order)
    return order


@pytest.fixture
def other_order(other_buyer, other_merchant):
    return OrderFactory(buyer=other_buyer, merchant=other_merchant)


@pytest.fixture
def api():
    """``api(user)`` → an APIClient authenticated by a real API token of the
    user, newly issued (``api(None)`` is anonymous)."""

    def make(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            from accounts.services import issue_api_token

            client.credentials(HTTP_AUTHORIZATION=f"Token {issue_api_token(user=user).key}")
        return client

    return make
