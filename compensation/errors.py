from core.errors import IdempotencyConflict, Conflict, DomainError, InvalidInput, NotFound, PermissionDenied


class RemedyRefused(DomainError):
    status = 422


class BuyerBlacklisted(RemedyRefused):
    code = "buyer_blacklisted"
    default_detail = "This buyer is blacklisted and gets no remedy."


class OrderNotEligible(RemedyRefused):
    code = "order_not_eligible"
    default_detail = "The ticket's order cannot take this remedy."


class AmountInvalid(RemedyRefused):
    code = "amount_invalid"
    default_detail = "The amount is not valid for this remedy."


class TicketClosed(RemedyRefused):
    code = "ticket_closed"
    default_detail = "The ticket is closed or resolved; reopen it first."


class RemedyDecided(Conflict):
    code = "already_decided"
    default_detail = "This remedy has already been decided."


class OwnRequest(PermissionDenied):
    code = "own_request"
    default_detail = "Nobody approves or rejects their own request."



class BudgetStillExhausted(Conflict):
    code = "budget_still_exhausted"
    default_detail = "Today's spend has reached the budget: raise today's budget to re-arm."


__all__ = [
    "AmountInvalid", "BudgetStillExhausted", "BuyerBlacklisted", "IdempotencyConflict", "InvalidInput",
    "NotFound", "OrderNotEligible", "OwnRequest", "PermissionDenied", "RemedyDecided", "TicketClosed",
]
