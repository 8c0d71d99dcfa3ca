"""Every write of ``compensation``, one module per use case:

- ``remedies``: apply within the caps or route to approval; approve, reject;
- ``policy``: the caps and the breaker, changed by supervisors;
- ``blacklist``: by hand and from the counts over a rolling window; the doors' guard.

The decisions themselves are in ``compensation/rules.py``; the counters
taken by conditional updates in ``compensation/counters.py``.
"""

from compensation.rules import (
    REASON_BREAKER,
    REASON_BUYER_CAP,
    REASON_COUPON_AMOUNT,
    REASON_FLAGGED,
    REASON_QUOTA,
    REASON_VALUE,
)
from compensation.services.blacklist import (
    active_blacklist,
    add_to_blacklist,
    blacklist_from_recent_counts,
    blacklist_guard,
    listed,
    system_busy,
)
from compensation.services.policy import BOOL_FIELDS, POLICY_FIELDS, get_policy, period_of, reset_breaker, update_policy
from compensation.services.remedies import (
    RemedyResult,
    apply_remedy,
    approve_remedy,
    policy_caps,
    refusal_for,
    refusals_for,
    reject_remedy,
    remedy_body,
    request_hash,
)

__all__ = [
    "BOOL_FIELDS", "POLICY_FIELDS", "REASON_BREAKER", "REASON_BUYER_CAP", "REASON_COUPON_AMOUNT", "REASON_FLAGGED", "REASON_QUOTA",
    "REASON_VALUE", "RemedyResult", "active_blacklist", "add_to_blacklist", "apply_remedy", "approve_remedy",
    "blacklist_from_recent_counts", "blacklist_guard", "listed", "system_busy", "get_policy", "period_of", "policy_caps", "refusal_for", "refusals_for", "reject_remedy",
    "remedy_body", "request_hash", "reset_breaker", "update_policy",
]
