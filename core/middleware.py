"""Project middleware, every one usable under ASGI without a thread switch.

In Django's ASGI handler each sync-only middleware in the chain costs a
switch to a thread and back on every request; with WhiteNoise's middleware
(sync only) and a sync error middleware in the chain, an API call paid several
before reaching its view.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpResponse, JsonResponse
from django.utils.deprecation import MiddlewareMixin
from whitenoise.middleware import WhiteNoiseMiddleware

from core.errors import DomainError, ServiceUnavailable, is_outage
from core.realtime import published_together


class PublishTogetherMiddleware:
    """What the request's transactions publish after they commit goes to the
    channel layer in one round trip once the view has answered
    (``core.realtime.published_together``); first in the chain, so nothing
    the request publishes escapes it. Sync: the chain runs on the request's
    thread (``core.asgi_http``)."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        with published_together():
            return self.get_response(request)


class DomainErrorMiddleware(MiddlewareMixin):
    """A domain error that reaches no handler is still the client's answer.

    Views call services and parse input with ``core.parsing``; a
    ``DomainError`` they do not catch (a bad ``?after_seq=²`` on a poll, a
    page's malformed id) is answered here with its own status and code, never
    as a 500: JSON for the API and for scripts, a short text for htmx swaps
    and pages.
    """

    def process_exception(self, request, exception):
        if is_outage(exception):
            exception = ServiceUnavailable()
        if not isinstance(exception, DomainError):
            return None
        return domain_error_response(request, exception)


def domain_error_response(request, exception: DomainError) -> HttpResponse:
    body = {"code": exception.code, "detail": str(exception.detail), **exception.extra}
    if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
        response = JsonResponse(body, status=exception.status)
    else:
        response = HttpResponse(f"{exception.detail} ({exception.code})", status=exception.status,
                                content_type="text/plain; charset=utf-8")
    if exception.status == 503:
        response["Retry-After"] = "2"
    return response


class StaticFilesMiddleware(WhiteNoiseMiddleware):
    """WhiteNoise, async under ASGI: a request that is not a static file goes
    on without a thread switch (WhiteNoise's own middleware is sync only); a
    static file is served as WhiteNoise serves it."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, **kwargs) -> None:
        super().__init__(get_response, **kwargs)
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request):
        if self.is_async:
            return self.__acall__(request)
        return super().__call__(request)

    async def __acall__(self, request):
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return await sync_to_async(self.serve, thread_sensitive=False)(static_file, request)
        return await self.get_response(request)
