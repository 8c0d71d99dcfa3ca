"""The websocket user from the Django session, resolved off the shared thread.

Channels' ``AuthMiddleware`` loads the session and the user through
``database_sync_to_async``, which runs on the one thread a process gives all
of its sockets' database work: a thousand pages reconnecting after a deploy
queue behind each other there. This middleware does the same lookup (the
same session checks: the backend, the session hash) on asgiref's thread pool,
so connects proceed in parallel, each on its own pooled connection.
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from channels.auth import AuthMiddleware, get_user
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.db import close_old_connections


def _user_for(scope):
    close_old_connections()
    try:
        # get_user is Channels' own lookup, wrapped for its shared thread; call it here instead
        return get_user.func(scope)
    finally:
        close_old_connections()


class PooledAuthMiddleware(AuthMiddleware):
    async def resolve_scope(self, scope) -> None:
        scope["user"]._wrapped = await sync_to_async(_user_for, thread_sensitive=False)(scope)


def PooledAuthMiddlewareStack(inner):  # noqa: N802 (named like Channels' AuthMiddlewareStack)
    return CookieMiddleware(SessionMiddleware(PooledAuthMiddleware(inner)))
