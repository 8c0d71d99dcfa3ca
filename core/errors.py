"""The base of every domain error.

Services raise subclasses with a stable machine ``code`` and the HTTP status
the API answers with; the one DRF exception handler in ``core.api``
renders them as ``{"code", "detail"}``. Services never raise DRF exceptions.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    code: str = "domain_error"
    status: int = 400
    default_detail: str = "The request cannot be carried out."

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)


class NotFound(DomainError):
    code = "not_found"
    status = 404
    default_detail = "Not found."


class PermissionDenied(DomainError):
    code = "permission_denied"
    status = 403
    default_detail = "You do not have permission to do this."


class InvalidInput(DomainError):
    code = "invalid"
    status = 400
    default_detail = "Invalid input."


class Conflict(DomainError):
    code = "conflict"
    status = 409
    default_detail = "The resource changed; reload and try again."


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    default_detail = "This Idempotency-Key was used with a different request."


class IdempotencyKeyRequired(InvalidInput):
    """A POST that moves money came without an ``Idempotency-Key``: a client's
    retry could then do it twice, so it is refused (API.md)."""

    code = "idempotency_key_required"
    default_detail = "This request moves money: send an Idempotency-Key header (a fresh one per action, the same on retries)."



class ServiceUnavailable(DomainError):
    """The database (or another part the request needs) is away for a moment:
    the client retries (money writes with the same Idempotency-Key)."""

    code = "unavailable"
    status = 503
    default_detail = "The service is busy or restarting; try again in a moment."


def is_outage(error: BaseException) -> bool:
    """A database that cannot be reached, a connection that died, a pool with
    no connection left, a deadlock or serialization failure: worth a retry."""
    from django.db import InterfaceError, OperationalError

    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    try:
        from psycopg_pool import PoolTimeout
    except ImportError:  # pragma: no cover (the embedded default has psycopg too)
        return False
    return isinstance(error, PoolTimeout)
