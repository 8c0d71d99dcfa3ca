"""Every write of ``merchants``, one module per seam:

- ``money``: escrow (paid, released), the deposit, dispute holds, refunds;
- ``payouts``: request one (a supervisor reviews it while the merchant's credit is low), settle it with the bank's answer;
- ``orders``: change before shipment, ship, cancel and undo the cancellation;
- ``resends``: compelled resends and their missed deadlines, intercept-and-resend;
- ``stock``: what the merchant has on hand of each variant;
- ``credit``, ``credit_policy``: the merchant's credit score, and the policy of what a low score sets off.

Each public function owns its transaction, except the ones other apps call
inside their own (dispute holds, refunds, resend tasks: they assert it).
The arithmetic of held funds is ``merchants/escrow.py``; reads, including the
credit score's components and what is left once an order shipped, are
``merchants/selectors.py``.
"""

from merchants.services.credit import compute_credit, credit_score_from, recompute_credit_scores
from merchants.services.money import (
    MAX_FEN,
    DisputeHold,
    auto_confirm_orders,
    confirm_receipt,
    convert_hold_to_refund,
    deduct_deposit,
    lock_refundable,
    place_dispute_hold,
    record_order_paid,
    refund_order,
    settle_dispute,
    top_up_deposit,
)
from merchants.services.orders import cancel_order, change_order, merchant_group, restore_order, ship_order
from merchants.services.credit_policy import CREDIT_POLICY_FIELDS, get_credit_policy, update_credit_policy
from merchants.services.payouts import request_payout, review_payout, settle_payout
from merchants.services.stock import MAX_ON_HAND, set_stock
from merchants.services.resends import (
    RESEND_DEADLINE,
    create_resend_task,
    fulfil_resend_task,
    intercept_and_resend,
    lock_shipment_of,
    mark_missed_resends,
)

__all__ = [
    "CREDIT_POLICY_FIELDS", "get_credit_policy", "review_payout", "update_credit_policy",
    "MAX_FEN", "MAX_ON_HAND", "RESEND_DEADLINE", "DisputeHold", "auto_confirm_orders", "cancel_order", "change_order",
    "compute_credit", "confirm_receipt", "convert_hold_to_refund", "create_resend_task", "credit_score_from",
    "deduct_deposit", "fulfil_resend_task", "intercept_and_resend", "lock_refundable", "lock_shipment_of", "mark_missed_resends", "merchant_group", "place_dispute_hold",
    "recompute_credit_scores", "record_order_paid", "refund_order", "request_payout", "restore_order",
    "set_stock", "settle_dispute", "settle_payout", "ship_order", "top_up_deposit",
]
