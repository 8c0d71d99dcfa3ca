"""Pure decisions of ``risk``: what an account's status allows, and how long
an undo lasts. The services refuse with them; the pages offer with them."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

from merchants.rules import undo_open  # noqa: F401  (the cancel's own rule, asked by the risk page)

ACTIVE, FLAGGED, FROZEN = "active", "flagged", "frozen"
MAX_BULK_ORDERS = 500  # orders one bulk cancel (or its undo) takes at most


def may_flag(*, status: str) -> bool:
    """Flag an active account (a frozen one is blocked already)."""
    return status == ACTIVE


def may_freeze(*, status: str) -> bool:
    return status != FROZEN


def may_unfreeze(*, status: str) -> bool:
    """Lift a flag or a freeze (after the owner's details are checked)."""
    return status != ACTIVE


# --- the stolen-account loop on a ticket ------------------------------------------------------

# the reply prepared for complaints from a suspected stolen account (the episode's words)
PREPARED_REPLY_SHORTCUT = "risk-reverify"
PREPARED_REPLY = _("System upgrade, please re-verify your registration details.")


def shows_risk_warning(*, account_status: str, open_hit: bool) -> bool:
    """A ticket's console page warns about its buyer when the account is
    flagged or frozen, or when the detector holds an open hit on it (before
    anyone acted): the agent is told, and the prepared reply is offered."""
    return open_hit or account_status in ("flagged", "frozen")
