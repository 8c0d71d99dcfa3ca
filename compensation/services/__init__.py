"""Every write of ``compensation``, one module per use case:

- ``remedies``: apply within the caps or route to approval; approve, reject;
- ``policy``: the caps and the breaker, changed by supervisors;
- ``blacklist``: by hand and from the daily counts.

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
from compensation.services.blacklist import active_blacklist, add_to_blacklist, blacklist_from_daily_counts
from compensation.services.policy import POLICY_FIELDS, get_policy, period_of, reset_breaker, update_policy
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
    "POLICY_FIELDS", "REASON_BREAKER", "REASON_BUYER_CAP", "REASON_COUPON_AMOUNT", "REASON_FLAGGED", "REASON_QUOTA",
    "REASON_VALUE", "RemedyResult", "active_blacklist", "add_to_blacklist", "apply_remedy", "approve_remedy",
    "blacklist_from_daily_counts", "get_policy", "period_of", "policy_caps", "refusal_for", "refusals_for", "reject_remedy",
    "remedy_body", "request_hash", "reset_breaker", "update_policy",
]
