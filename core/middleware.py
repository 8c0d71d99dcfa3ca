"""A domain error that reaches no handler is still the client's answer.

Views call services and parse input with ``core.parsing``; a ``DomainError``
they do not catch (a bad ``?after_seq=²`` on a poll, a page's malformed id)
is answered here with its own status and code, never as a 500: JSON for the
API and for scripts, a short text for htmx swaps and pages.
"""

from __future__ import annotations

from django.http import HttpResponse, JsonResponse

from core.errors import DomainError


class DomainErrorMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, DomainError):
            return None
        body = {"code": exception.code, "detail": str(exception.detail), **exception.extra}
        if request.path.startswith("/api/") or "application/json" in request.headers.get("Accept", ""):
            return JsonResponse(body, status=exception.status)
        return HttpResponse(f"{exception.detail} ({exception.code})", status=exception.status,
                            content_type="text/plain; charset=utf-8")
