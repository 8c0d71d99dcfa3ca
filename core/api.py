"""API plumbing shared by every app: the error format, pagination and the
base of every call's input (``Input``)."""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.functional import cached_property
from rest_framework import exceptions, parsers, serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response

from core.errors import DomainError, ServiceUnavailable, is_outage
from core.parsing import _INTEGER, MAX_INT, parse_int

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
    if is_outage(exc):
        logger.warning("answered 503 for %s: %s", type(exc).__name__, exc)
        response = error_response(code=ServiceUnavailable.code, detail=ServiceUnavailable.default_detail,
                                  status_code=503)
        response["Retry-After"] = "2"
        return response
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
            # a failure that names itself (an expired token: token_expired) keeps its code
            own = exc.get_codes()
            code = own if isinstance(own, str) and own not in ("authentication_failed", "not_authenticated") \
                else "not_authenticated"
        response = error_response(code=code, detail=_flatten(exc.detail), status_code=exc.status_code)
        if getattr(exc, "wait", None):
            response["Retry-After"] = str(int(exc.wait))
        return response
    return None


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser; a body nested too deep for Python's parser (a
    RecursionError, which DRF lets through as a 500) is a 400 like any
    malformed body."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type=media_type, parser_context=parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deep") from None


class IntegerField(serializers.IntegerField):
    """DRF's ``IntegerField`` for the project's inputs: ASCII digits only
    (``"²"`` and full-width digits are refused) and within a 64-bit column
    unless narrower bounds are given (past it SQLite raises OverflowError)."""

    def __init__(self, **kwargs):
        kwargs.setdefault("min_value", -MAX_INT)
        kwargs.setdefault("max_value", MAX_INT)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, str) and not _INTEGER.fullmatch(data.strip()):
            self.fail("invalid")
        return super().to_internal_value(data)


class Input(serializers.Serializer):
    """An API call's input: validated into ``validated_data``, never saved.

    DRF builds a serializer's fields anew for every instance, a deep copy of
    the declared ones with their validators (``Serializer.get_fields``): on
    ticket intake a twentieth of the request's CPU, for fields that are the
    same every time. An input's fields keep no state while they validate
    (what they find goes into the call's own dicts and errors), so an
    ``Input`` builds them once per class and every instance shares them. They
    are bound to an instance made without data or context, so they keep no
    request alive and never see one: a field that would read its context or
    its parent (a ``HiddenField``, a related field's queryset, a default or a
    validator that asks for its context) cannot be declared on an ``Input``
    (``TypeError`` when the class is made; write a plain ``Serializer``).
    ``validate_<field>`` and ``validate`` still run on the call's own
    instance. The fields read ``partial`` from the instance they are bound
    to, so an ``Input`` is never partial. Errors come out exactly as DRF's
    (core/tests/test_api_input.py).
    """

    def __init__(self, *args, **kwargs):
        if kwargs.get("partial"):
            raise TypeError(f"{type(self).__qualname__} is an Input: its shared fields cannot be partial")
        super().__init__(*args, **kwargs)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name, field in cls._declared_fields.items():
            if reason := _reads_its_context(field):
                raise TypeError(f"{cls.__qualname__}.{name}: {reason}; an Input's fields are shared by every call")

    @cached_property
    def fields(self):
        cls = type(self)
        shared = cls.__dict__.get("_shared_fields")
        if shared is None:
            # two threads may both build them once; either copy serves
            shared = serializers.Serializer.fields.func(cls())
            cls._shared_fields = shared
        return shared


def schema_doc_excludes() -> list:
    """The classes whose docstrings stay out of the OpenAPI schema
    (``GET_LIB_DOC_EXCLUDES``): drf-spectacular's list of DRF's own, and
    ``Input``, whose docstring is for the engineers, not the API's readers
    (drf-spectacular would give it to every input that has none)."""
    from drf_spectacular.plumbing import get_lib_doc_excludes

    return [*get_lib_doc_excludes(), Input]


def _reads_its_context(field) -> str | None:
    """Why ``field`` (or a child of it) depends on the serializer it is bound
    to or its context, else None."""
    from rest_framework.relations import ManyRelatedField, RelatedField

    if isinstance(field, serializers.HiddenField | RelatedField | ManyRelatedField | serializers.SerializerMethodField):
        return f"a {type(field).__name__} reads its serializer or its context"
    if getattr(field.default, "requires_context", False):
        return "its default asks for the context"
    if any(getattr(v, "requires_context", False) for v in field.validators):
        return "a validator asks for the context"
    if isinstance(field, serializers.BaseSerializer) and not isinstance(field, Input | serializers.ListSerializer):
        return "a nested serializer that is not an Input"
    child = getattr(field, "child", None)  # a list's or a dict's items, a list serializer's rows
    return _reads_its_context(child) if child is not None else None


class Pagination(PageNumberPagination):
    """``{"count", "next", "previous", "results"}`` with ``page_size`` up to 200."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_page_number(self, request, paginator):
        return parse_int(request.query_params.get(self.page_query_param) or 1, field="page", minimum=1,
                         maximum=10**9)

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        return min(parse_int(raw, field="page_size", minimum=1), self.max_page_size)



def filter_choice(queryset, params, name: str, values, field: str | None = None):
    """Apply ``?name=value`` when given; an unknown value is a 400, never an empty page."""
    wanted = params.get(name)
    if not wanted:
        return queryset
    if wanted not in values:
        raise exceptions.ValidationError({name: f"Unknown {name} {wanted[:32]!r}."})
    return queryset.filter(**{field or name: wanted})
