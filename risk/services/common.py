"""What the risk services share: the checks of who acts and why, and the
effect an action has on the account's open hits. Runs inside the caller's
transaction."""

from __future__ import annotations

from datetime import datetime

from accounts import roles
from accounts.models import User
from core.realtime import publish_on_commit
from risk.errors import AccountNotEligible, AccountNotFound, InvalidInput, PermissionDenied
from risk.locks import lock_open_hits
from risk.models import RiskHit
from tickets.events import CONSOLE


def clean_reason(reason: str, *, required: bool = True) -> str:
    reason = (reason or "").strip()
    if (required and not reason) or len(reason) > 255:
        raise InvalidInput("Give a reason (at most 255 characters)." if required else "At most 255 characters.",
                           field="reason")
    return reason


def require_supervisor(actor) -> None:
    if not roles.is_supervisor(actor):
        raise PermissionDenied("Only a supervisor does this.")


def require_staff(actor) -> None:
    if not roles.is_agent(actor):
        raise PermissionDenied("Staff only.")


def buyer_account(user: User | None) -> User:
    if user is None:
        raise AccountNotFound()
    if not roles.is_buyer(user) or roles.is_agent(user) or roles.is_integration(user):
        raise AccountNotEligible()
    return user


def close_open_hits(*, user_id: int, actor, now: datetime, note: str) -> RiskHit | None:
    """An action on the account answers its open hits: they become actioned."""
    hits = lock_open_hits(user_id)
    for hit in hits:
        hit.status = RiskHit.Status.ACTIONED
        hit.reviewed_by = actor
        hit.reviewed_at = now
        hit.review_note = note[:255]
        hit.save(update_fields=["status", "reviewed_by", "reviewed_at", "review_note"])
    return hits[0] if hits else None


def announce(account: User) -> None:
    publish_on_commit([CONSOLE], {"type": "risk.account", "user_id": account.pk,
                                  "account_status": account.account_status})
