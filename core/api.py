"""API plumbing shared by every app: the error format and pagination."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from core.errors import DomainError

logger = logging.getLogger(__name__)

_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "throttled",
}


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{k}: {_flatten(v)}" for k, v in detail.items())
    if isinstance(detail, list):
        return " ".join(_flatten(v) for v in detail)
    return str(detail)


def error_response(*, code: str, detail: str, status_code: int, **extra) -> Response:
    return Response({"code": code, "detail": detail, **extra}, status=status_code)


def exception_handler(exc, context) -> Response | None:
    """Render every error as ``{"code", "detail"}`` (plus ``errors`` for field errors)."""
    if isinstance(exc, DomainError):
        return error_response(code=exc.code, detail=str(exc.detail), status_code=exc.status, **exc.extra)
    if isinstance(exc, Http404):
        return error_response(code="not_found", detail="Not found.", status_code=404)
    if isinstance(exc, DjangoPermissionDenied):
        return error_response(code="permission_denied", detail=str(exc) or _CODES[403], status_code=403)
    if isinstance(exc, DjangoValidationError):
        return error_response(code="invalid", detail=" ".join(exc.messages), status_code=400)
    if isinstance(exc, exceptions.ValidationError):
        return error_response(
            code="invalid", detail=_flatten(exc.detail), status_code=400, errors=exc.detail
        )
    if isinstance(exc, exceptions.ParseError):
        return error_response(code="malformed_json", detail=str(exc.detail), status_code=400)
    if isinstance(exc, exceptions.APIException):
        code = _CODES.get(exc.status_code, "error")
        if isinstance(exc, exceptions.NotAuthenticated | exceptions.AuthenticationFailed):
            code = "not_authenticated"
        response = error_response(code=code, detail=_flatten(exc.detail), status_code=exc.status_code)
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    return None


class Pagination(PageNumberPagination):
    """``{"count", "next", "previous", "results"}`` with ``page_size`` up to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_number(self, request, paginator):
        raw = request.query_params.get(self.page_query_param) or 1
        try:
            number = int(raw)
        except (TypeError, ValueError):
            raise exceptions.ValidationError({"page": "A page number is an integer."}) from None
        if number < 1:
            raise exceptions.ValidationError({"page": "Page numbers start at 1."})
        return number

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            raise exceptions.ValidationError({"page_size": "page_size is an integer."}) from None
        if size < 1:
            raise exceptions.ValidationError({"page_size": "page_size is at least 1."})
        return min(size, self.max_page_size)



def filter_choice(queryset, params, name: str, values, field: str | None = None):
    """Apply ``?name=value`` when given; an unknown value is a 400, never an empty page."""
    wanted = params.get(name)
    if not wanted:
        return queryset
    if wanted not in values:
        raise exceptions.ValidationError({name: f"Unknown {name} {wanted[:32]!r}."})
    return queryset.filter(**{field or name: wanted})
