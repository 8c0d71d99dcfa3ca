"""The websocket user from the Django session, resolved inside the consumer's
first database call.

Channels' ``AuthMiddleware`` loads the session and the user through
``database_sync_to_async``, which runs on the one thread a process gives all
of its sockets' database work: a thousand pages reconnecting after a deploy
queued behind each other there. Here the middleware only prepares the lookup;
each consumer resolves the user (``resolve_user``: Channels' own lookup, with
its checks of the backend and the session hash) on the thread pool, in the
same call that reads what the socket needs, so a connect costs one thread hop
and connects proceed in parallel, each on its own pooled connection.

The common case, a session of Django's ``ModelBackend`` whose hash matches
the user's under the current secret, reads the user in one statement written
once per process (``core.rows``) instead of the backend's ORM query, which
was a sixth of a connect's CPU; it returns exactly what Channels' lookup
would. Every other case (no session, another backend, an inactive user, a
hash that does not match, perhaps under a fallback secret) goes through
Channels' lookup itself, which flushes the session as it always did.

An app may read more with the user in that statement (``read_with_user``):
``accounts`` adds the user's role groups, which a connect asks for next and
would otherwise read from the cache, a Redis round trip more per socket.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from channels.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, UserLazyObject, get_user
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.utils.crypto import constant_time_compare
from django.utils.functional import empty

from core.rows import Columns, column, prepared_cursor, table

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"

# (column, keep): ``column(user_alias, vendor)`` is one more column of the user's
# statement, ``keep(user, value)`` leaves its value on the user it built
_WITH_USER: list[tuple[Callable[[str, str], str], Callable[[Any, Any], None]]] = []


def read_with_user(column: Callable[[str, str], str], keep: Callable[[Any, Any], None]) -> None:
    """Read one more column with the socket's user (``column(alias, vendor)``,
    a scalar subquery over the user's row) and hand its value to ``keep``
    with the user. Called by an app's ``ready()``, before the first connect
    (a second call with the same pair, as a ``ready()`` run again makes,
    changes nothing)."""
    if (column, keep) not in _WITH_USER:
        _WITH_USER.append((column, keep))
        _user_sql.cache_clear()


class DeferredAuthMiddleware(BaseMiddleware):
    async def __call__(self, scope, receive, send):
        scope = dict(scope)
        scope.setdefault("user", UserLazyObject())
        return await super().__call__(scope, receive, send)


def resolve_user(scope):
    """The session's user (an AnonymousUser without one). Call it from the
    consumer's pool thread before touching ``scope["user"]``, which holds the
    user afterwards."""
    user = scope.get("user")
    if isinstance(user, UserLazyObject):
        if user._wrapped is empty:
            # Channels' lookup, unwrapped from its shared thread, when the common case does not hold
            user._wrapped = _verified_model_backend_user(scope.get("session")) or get_user.func(scope)
        return user._wrapped
    return user


def _verified_model_backend_user(session):
    """The session's user when the session is ``ModelBackend``'s, the user
    exists and may log in (active, as the backend's ``user_can_authenticate``
    asks), and the session's hash matches the user's under the current
    secret: what Channels' ``get_user`` returns then. Else None."""
    if session is None:
        return None
    try:
        user_id = session[SESSION_KEY]
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        return None
    session_hash = session.get(HASH_SESSION_KEY)
    if backend_path != MODEL_BACKEND or backend_path not in settings.AUTHENTICATION_BACKENDS or not session_hash:
        return None
    model = get_user_model()
    columns = _user_columns(model)
    with prepared_cursor() as cursor:
        cursor.execute(_user_sql(model, connection.vendor), [model._meta.pk.to_python(user_id)])
        row = cursor.fetchone()
    user = columns.build(row[:columns.width]) if row is not None else None
    if user is None or not getattr(user, "is_active", True):
        return None
    if not constant_time_compare(session_hash, user.get_session_auth_hash()):
        return None
    for (_, keep), value in zip(_WITH_USER, row[columns.width:]):
        keep(user, value)
    return user


@functools.cache
def _user_columns(model) -> Columns:
    return Columns(model, "u")


@functools.cache
def _user_sql(model, vendor: str) -> str:
    extra = "".join(f", {more('u', vendor)}" for more, _ in _WITH_USER)
    return (f"SELECT {_user_columns(model).sql()}{extra} FROM {table(model)} u "
            f"WHERE {column(model, model._meta.pk.name, 'u')} = %s")


def DeferredAuthMiddlewareStack(inner):  # noqa: N802 (named like Channels' AuthMiddlewareStack)
    return CookieMiddleware(SessionMiddleware(DeferredAuthMiddleware(inner)))
