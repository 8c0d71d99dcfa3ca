"""Every write of ``risk``, one module per seam:

- ``detector``: the dormant-burst rule that opens review hits;
- ``accounts``: a supervisor's flag, freeze and dismissal, the owner's
  verification and the unfreeze it allows;
- ``orders``: cancelling an account's pending orders in bulk, and the undo;
- ``check``: the order system's question (allow or deny a booking).

Who may do what (DESIGN.md, "Risk and incidents"): supervisors find stolen
accounts and act on them; unfreezing is the end of the owner's call to the
service desk: any agent may do it, but only on the strength of a recorded,
passed check of the registration details, so the control is the check, not
the agent's rank. Public entry points own their transaction. Which actions an
account's status allows is ``risk/rules.py``; reads are ``risk/selectors.py``.
"""

from risk.services.accounts import (
    VERIFICATION_VALID_FOR,
    dismiss_hit,
    flag_account,
    freeze_account,
    unfreeze_account,
    verify_owner,
)
from risk.services.check import RiskDecision, risk_check
from risk.services.detector import DetectionResult, Thresholds, detect_stolen_accounts, hour_slot
from risk.services.orders import BulkOrdersResult, cancel_pending_orders, restore_cancelled_orders

__all__ = [
    "VERIFICATION_VALID_FOR", "BulkOrdersResult", "DetectionResult", "RiskDecision", "Thresholds",
    "cancel_pending_orders", "detect_stolen_accounts", "dismiss_hit", "flag_account", "freeze_account",
    "hour_slot", "restore_cancelled_orders", "risk_check", "unfreeze_account", "verify_owner",
]
