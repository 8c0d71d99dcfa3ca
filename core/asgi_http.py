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

This handler builds the chain in sync mode and runs, as one synchronous call
on the request's thread (``thread_sensitive``), everything Django's handler
runs on threads for a request: the ``request_started`` signal, the chain and
view, and for an answer already in memory its ``close()`` (the
``request_finished`` signal, which hands the database connection back) before
the answer is written. Django's handler pays a switch for each of the three
and two tasks per request to notice a client that goes away while the view
runs, which a synchronous view cannot be stopped for anyway. Reading the body
and sending the answer stay on the event loop; a streaming answer (a file, an
export) is sent as Django sends it, stopped when the client goes away and
closed after its last chunk. Websockets do not pass here.

Each request still has a thread of its own (its database connection, and
requests that wait on the database overlap), but the thread is kept for a
later request instead of being started and joined for each one, as Django's
``ThreadSensitiveContext()`` does (asgiref's ``executor=`` argument).

Measured in-process on ticket intake (PostgreSQL and Redis, the ASGI app
called directly): 15.8 ms of CPU per ticket with Django's handler, 13.8 with
one switch, 11.6 with kept threads; then, on the remedy and the 404 floor of
any API call, 0.4-0.5 ms less per request with the signals and the close in
the same switch and no tasks (docs/PERFORMANCE.md).

An ``async def`` view would still work (Django runs it with
``async_to_sync``), at the price of a switch back; there is none today.
"""

from __future__ import annotations

import asyncio
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import django
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers import base
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.http import FileResponse
from django.urls import set_script_prefix


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

    async def handle(self, scope, receive, send):
        """Django's ``handle`` with the request's whole synchronous part in one
        switch: ``request_started``, the request, the chain and view and, for
        an answer already in memory, ``response.close()`` (``request_finished``:
        the connection goes back before the answer is written, not after a
        second switch). A streaming answer (a file, an export) is sent as
        Django sends it, watching for the client leaving, and closed after."""
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        set_script_prefix(get_script_prefix(scope))
        try:
            response = await sync_to_async(self._respond, thread_sensitive=True)(scope, body_file)
            if response.streaming:
                await self._stream(response, receive, send)
            else:
                await self.send_response(response, send)
        finally:
            body_file.close()

    def _respond(self, scope, body_file):
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
            response._handler_class = self.__class__
            if isinstance(response, FileResponse):
                response.block_size = self.chunk_size  # the ASGI server chunks
        if not response.streaming:
            response.close()
        return response

    async def _stream(self, response, receive, send):
        """A streaming answer as Django's handler sends it: stopped when the
        client goes away, closed on the request's thread once sent."""
        sending = asyncio.create_task(self.send_response(response, send))
        leaving = asyncio.create_task(self.listen_for_disconnect(receive))
        try:
            await asyncio.wait((sending, leaving), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (leaving, sending):
                if not task.done():
                    task.cancel()
            await asyncio.wait((leaving, sending))  # each finished or cancelled; their errors read below
            await sync_to_async(response.close, thread_sensitive=True)()
        if not leaving.cancelled() and isinstance(leaving.exception(), AssertionError):
            raise leaving.exception()  # a message no ASGI server sends after the body, as Django raises it
        if not sending.cancelled():
            sending.result()  # an error while sending is the server's to log

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
