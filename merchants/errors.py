from core.errors import IdempotencyConflict, Conflict, DomainError, InvalidInput, NotFound, PermissionDenied


class MerchantNotFound(NotFound):
    default_detail = "Merchant not found."


class ExceedsWithdrawable(DomainError):
    code = "exceeds_withdrawable"
    default_detail = "The amount is more than you can withdraw now."


class AmountInvalid(InvalidInput):
    code = "amount_invalid"
    default_detail = "The amount must be a positive whole number of fen."



class OrderDisputed(Conflict):
    code = "order_disputed"
    default_detail = "The order has an open dispute; its money stays in escrow until the dispute is resolved."


class OrderNotReleasable(Conflict):
    code = "order_not_releasable"
    default_detail = "Only an order whose money is still in escrow can be confirmed."


class PayoutSettled(Conflict):
    code = "payout_settled"
    default_detail = "This payout has already been settled."


class PayoutAwaitingReview(Conflict):
    code = "payout_awaiting_review"
    default_detail = "This payout waits for a supervisor's review; the bank is asked only once it is approved."


class PayoutNotInReview(Conflict):
    code = "payout_not_in_review"
    default_detail = "This payout is not awaiting review (decided already, or never needed one)."


class HoldNotActive(Conflict):
    code = "hold_not_active"
    default_detail = "The hold is no longer held."


__all__ = [
    "AmountInvalid", "ExceedsWithdrawable", "HoldNotActive", "IdempotencyConflict", "MerchantNotFound", "NotFound",
    "OrderDisputed", "OrderNotReleasable", "PayoutSettled", "PermissionDenied",
]


class AlreadyShipped(Conflict):
    code = "already_shipped"
    default_detail = "The order has shipped; it can no longer be changed."


class TaskNotOpen(Conflict):
    code = "task_not_open"
    default_detail = "This task is no longer open."


class AlreadyCancelled(Conflict):
    code = "already_cancelled"
    default_detail = "The order is already cancelled."


class OrderNotCancellable(Conflict):
    code = "order_not_cancellable"
    default_detail = "The order's money has left escrow; it cannot be cancelled, only refunded."


class NotCancelled(Conflict):
    code = "not_cancelled"
    default_detail = "The order is not cancelled; there is nothing to undo."


class UndoUnavailable(Conflict):
    code = "undo_unavailable"
    default_detail = "This cancellation cannot be undone."


class UndoExpired(Conflict):
    code = "undo_expired"
    default_detail = "The time to undo this cancellation has passed."


class ChangedSinceCancel(Conflict):
    code = "changed_since_cancel"
    default_detail = "The order changed after it was cancelled; the cancellation can no longer be undone."


class AccountRestricted(Conflict):
    code = "account_restricted"
    default_detail = ("The buyer's account is frozen or flagged as stolen: its cancelled orders stay cancelled "
                      "until the owner is verified and the account is active again.")


class OutOfStock(Conflict):
    """A colour or size change needs the new variant in stock."""

    code = "out_of_stock"
    default_detail = "The new variant is out of stock; the order was not changed."


class InterceptUnavailable(Conflict):
    code = "intercept_unavailable"
    default_detail = "Intercept-and-resend applies only to a shipped order whose parcel is still on its way."


class AlreadyIntercepted(Conflict):
    code = "already_intercepted"
    default_detail = "This parcel already has an intercept request."
