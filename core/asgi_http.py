"""Django's HTTP side under ASGI with one thread switch per request, not two
per middleware.

Django's own ``ASGIHandler`` builds the middleware chain in async mode. Every
middleware written on ``MiddlewareMixin`` (sessions, locale, CSRF,
authentication, messages, security, clickjacking, django-axes: all of ours
but WhiteNoise's) then runs its ``process_request`` and its
``process_response`` each through ``sync_to_async``: about twenty hand-offs
between the event loop and the request's thread for one API call, each
copying the context and waking a thread. Our views are synchronous (DRF), so
all that switching buys nothing; profiled in-process on ticket intake, the
event loop's share of the CPU (the hand-offs themselves) was as large as the
view's and the service's together.

This handler builds the chain in sync mode and runs chain and view as one
synchronous call on the request's thread (``thread_sensitive``: the same
thread as the ``request_started`` and ``request_finished`` signals, so the
request's database connection is the one those signals close). Reading the
body, sending the answer and noticing a client that went away stay on the
event loop as in Django's handler; websockets do not pass here.

Each request still has a thread of its own (its database connection, and
requests that wait on the database overlap), but the thread is kept for a
later request instead of being started and joined for each one, as Django's
``ThreadSensitiveContext()`` does (asgiref's ``executor=`` argument).

Measured in-process on ticket intake (PostgreSQL and Redis, the ASGI app
called directly): 15.8 ms of CPU per ticket with Django's handler, 13.8 with
one switch, 11.6 with kept threads (docs/PERFORMANCE.md).

An ``async def`` view would still work (Django runs it with
``async_to_sync``), at the price of a switch back; there is none today.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler
from django.http import FileResponse


MAX_IDLE_THREADS = 64


class OneSwitchASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        base.BaseHandler.__init__(self)
        self.load_middleware(is_async=False)
        # request threads waiting for their next request, the longest idle
        # first (a request whose client left may still be running on the
        # latest: Django abandons it, the thread finishes it)
        self._idle: deque[ThreadPoolExecutor] = deque()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # each request has a thread of its own, as in Django's handler, but the
        # thread is kept for a later request instead of started and joined anew
        executor = self._idle.popleft() if self._idle else ThreadPoolExecutor(max_workers=1, thread_name_prefix="http")
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            if len(self._idle) < MAX_IDLE_THREADS:
                self._idle.append(executor)
            else:  # after a burst: no more idle threads than a busy moment needs
                executor.shutdown(wait=False)

    async def run_get_response(self, request):
        response = await sync_to_async(self.get_response, thread_sensitive=True)(request)
        response._handler_class = self.__class__
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # the ASGI server chunks
        return response


def get_http_application() -> OneSwitchASGIHandler:
    """``django.core.asgi.get_asgi_application`` with this handler."""
    django.setup(set_prefix=False)
    return OneSwitchASGIHandler()
