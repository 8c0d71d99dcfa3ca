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

