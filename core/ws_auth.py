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
"""

from __future__ import annotations

from channels.auth import UserLazyObject, get_user
from channels.middleware import BaseMiddleware
from channels.sessions import CookieMiddleware, SessionMiddleware
from django.utils.functional import empty


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
            user._wrapped = get_user.func(scope)  # Channels' lookup, unwrapped from its shared thread
        return user._wrapped
    return user


def DeferredAuthMiddlewareStack(inner):  # noqa: N802 (named like Channels' AuthMiddlewareStack)
    return CookieMiddleware(SessionMiddleware(DeferredAuthMiddleware(inner)))
