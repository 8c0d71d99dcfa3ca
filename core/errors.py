"""The base of every domain error, and the one table of what each code means
to an HTTP client.

Services raise subclasses with a stable machine ``code`` and never choose an
HTTP status: ``STATUS_BY_CODE`` maps every code to its status, once, for the
whole project; the DRF exception handler in ``core.api`` (and the pages'
middleware) render ``{"code", "detail"}`` with it. A code is declared by one
class only (a subclass may refine the detail, not redeclare the code); a test
holds both rules.
"""

from __future__ import annotations

from typing import Any

STATUS_BY_CODE: dict[str, int] = {
    # the generic ones (core)
    "domain_error": 400, "invalid": 400, "not_found": 404, "permission_denied": 403, "conflict": 409,
    "already_decided": 409, "idempotency_conflict": 409, "idempotency_key_required": 400, "unavailable": 503,
    "blacklisted": 403,
    # tickets
    "illegal_transition": 409, "unknown_transition": 404, "transition_refused": 422, "transition_forbidden": 403,
    "unknown_category": 400, "unknown_order": 400, "already_rated": 409, "not_resolved": 409,
    "ticket_closed": 422, "assignee_invalid": 400, "shift_limit_reached": 409, "overtime_pending": 409,
    "held_by_other": 409,
    "below_ticket_tier": 403, "note_required": 400, "merge_into_self": 409, "merge_target_closed": 409,
    "merge_buyer_mismatch": 409, "file_required": 400, "unsupported_file_type": 415, "file_too_large": 413,
    "image_unreadable": 422, "image_too_large": 422, "too_many_attachments": 422, "attachment_unavailable": 422,
    "invalid_tag": 400, "too_many_tags": 422, "invalid_view_filters": 400, "view_name_taken": 409, "too_many_views": 422,
    # merchants
    "exceeds_withdrawable": 422, "amount_invalid": 422, "order_disputed": 409, "order_not_releasable": 409,
    "payout_settled": 409, "payout_awaiting_review": 409, "payout_not_in_review": 409, "account_restricted": 409, "hold_not_active": 409, "already_shipped": 409, "task_not_open": 409,
    "already_cancelled": 409, "order_not_cancellable": 409, "not_cancelled": 409, "undo_unavailable": 409,
    "undo_expired": 409, "changed_since_cancel": 409, "out_of_stock": 409, "intercept_unavailable": 409,
    "already_intercepted": 409,
    # compensation
    "buyer_blacklisted": 422, "order_not_eligible": 422, "own_request": 403, "budget_still_exhausted": 409,
    # risk
    "account_not_eligible": 422, "already_flagged": 409, "already_frozen": 409, "not_restricted": 409,
    "hit_closed": 409, "verification_required": 422, "verification_failed": 422,
    # incidents
    "incident_closed": 409, "review_incomplete": 400, "unknown_shipment": 404, "job_state": 409,
    "coupon_failure_exists": 409,
    # reports
    "invalid_date": 400, "period_reversed": 400, "period_too_long": 400, "invalid_group_by": 400,
}


class DomainError(Exception):
    code: str = "domain_error"
    default_detail: str = "The request cannot be carried out."

    @property
    def status(self) -> int:
        """The HTTP status of this error's code (``STATUS_BY_CODE``)."""
        return STATUS_BY_CODE[self.code]

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        self.detail = detail or self.default_detail
        self.extra = extra
        super().__init__(self.detail)


class NotFound(DomainError):
    code = "not_found"
    default_detail = "Not found."


class PermissionDenied(DomainError):
    code = "permission_denied"
    default_detail = "You do not have permission to do this."


class InvalidInput(DomainError):
    code = "invalid"
    default_detail = "Invalid input."


class Conflict(DomainError):
    code = "conflict"
    default_detail = "The resource changed; reload and try again."


class AlreadyDecided(Conflict):
    code = "already_decided"
    default_detail = "This has already been decided."


class IdempotencyConflict(Conflict):
    code = "idempotency_conflict"
    default_detail = "This Idempotency-Key was used with a different request."


class IdempotencyKeyRequired(InvalidInput):
    """A POST that moves money came without an ``Idempotency-Key``: a client's
    retry could then do it twice, so it is refused (API.md)."""

    code = "idempotency_key_required"
    default_detail = "This request moves money: send an Idempotency-Key header (a fresh one per action, the same on retries)."



class Blacklisted(DomainError):
    """A door (``core.doors``) refuses an account, address or device on the
    blacklist. A buyer is told only "system busy", the words the order system
    shows for a denied booking; staff are told why."""

    code = "blacklisted"
    default_detail = "System busy, please try later."


class ServiceUnavailable(DomainError):
    """The database (or another part the request needs) is away for a moment:
    the client retries (money writes with the same Idempotency-Key)."""

    code = "unavailable"
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
