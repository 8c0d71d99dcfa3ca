"""The websocket's user from the session (``core.ws_auth.resolve_user``): the
common case in one statement, returning what Channels' lookup returns; every
other case through Channels' lookup, which refuses and flushes as it did."""

from __future__ import annotations

import pytest
from channels.auth import HASH_SESSION_KEY, UserLazyObject, get_user
from channels.routing import get_default_application
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.cache import SessionStore as CacheStore
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils.module_loading import import_string

from accounts.models import User
from core.ws_auth import _verified_model_backend_user, resolve_user

pytestmark = pytest.mark.django_db


def _session(user):
    client = Client()
    client.force_login(user)
    return import_string(f"{settings.SESSION_ENGINE}.SessionStore")(session_key=client.cookies["sessionid"].value)


def _scope(session):
    return {"session": session, "user": UserLazyObject()}


def test_a_good_session_gives_channels_user_in_one_statement(buyer):
    session = _session(buyer)
    list(session.keys())  # the session's own read aside
    with CaptureQueriesContext(connection) as queries:
        fast = _verified_model_backend_user(session)
    assert len(queries.captured_queries) == 1 and "accounts_user" in queries.captured_queries[0]["sql"]
    slow = get_user.func({"session": session})
    assert fast.pk == slow.pk == buyer.pk
    for field in User._meta.concrete_fields:
        assert getattr(fast, field.attname) == getattr(slow, field.attname), field.name
    assert resolve_user(_scope(_session(buyer))).pk == buyer.pk


def test_the_user_s_role_groups_come_in_the_same_statement_and_the_role_asks_nothing_more(buyer, agent):
    from django.core.cache import cache

    from accounts import roles

    for user, is_role in ((buyer, roles.is_buyer), (agent, roles.is_agent)):
        session = _session(user)
        list(session.keys())
        cache.delete(roles._cache_key(user.pk))
        with CaptureQueriesContext(connection) as queries:
            fast = _verified_model_backend_user(session)
            assert is_role(fast)  # from the row's groups: no query, no cache read
        assert len(queries.captured_queries) == 1
        assert cache.get(roles._cache_key(user.pk)) is None
        slow = get_user.func({"session": session})
        assert roles.role_permissions(fast) == roles.role_permissions(slow)
    # the app registering again (its ready() run twice) reads the column once
    from django.apps import apps

    from core import ws_auth

    before = list(ws_auth._WITH_USER)
    apps.get_app_config("accounts").ready()
    assert ws_auth._WITH_USER == before


def test_a_session_from_before_a_password_change_is_refused_and_flushed(buyer):
    session = _session(buyer)
    buyer.set_password("another-pass-8765")
    buyer.save()
    assert _verified_model_backend_user(session) is None
    assert isinstance(resolve_user(_scope(session)), AnonymousUser)
    assert HASH_SESSION_KEY not in session  # Channels' lookup flushed it, as before


def test_an_inactive_user_or_no_user_or_another_backend_is_not_the_fast_case(buyer):
    session = _session(buyer)
    User.objects.filter(pk=buyer.pk).update(is_active=False)
    assert _verified_model_backend_user(session) is None
    assert isinstance(resolve_user(_scope(session)), AnonymousUser)
    assert _verified_model_backend_user(None) is None
    assert _verified_model_backend_user(CacheStore()) is None  # an empty session
    other = _session(User.objects.create(username="other-backend"))
    assert _verified_model_backend_user(other).username == "other-backend"
    with override_settings(AUTHENTICATION_BACKENDS=["axes.backends.AxesStandaloneBackend"]):
        assert _verified_model_backend_user(other) is None  # ModelBackend no longer configured
    other["_auth_user_backend"] = "axes.backends.AxesStandaloneBackend"
    assert _verified_model_backend_user(other) is None


@pytest.mark.django_db(transaction=True)
async def test_a_socket_of_a_session_from_before_a_password_change_is_refused(buyer, order):
    from channels.db import database_sync_to_async

    from tickets.tests.factories import open_ticket

    ticket = await database_sync_to_async(open_ticket)(buyer=buyer, order=order)
    cookie = await database_sync_to_async(lambda: _cookie(buyer))()
    headers = [(b"origin", b"http://127.0.0.1:8000"), (b"host", b"127.0.0.1:8000"), (b"cookie", cookie)]
    path = f"/ws/tickets/{ticket.pk}/chat/"
    ok, _ = await WebsocketCommunicator(get_default_application(), path, headers=headers).connect(timeout=5)
    assert ok
    await database_sync_to_async(lambda: (buyer.set_password("another-pass-8765"), buyer.save()))()
    comm = WebsocketCommunicator(get_default_application(), path, headers=headers)
    ok, _ = await comm.connect(timeout=5)
    assert not ok


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()
