from core.errors import AlreadyDecided, Conflict, DomainError, IdempotencyConflict, InvalidInput, NotFound, PermissionDenied
from merchants.errors import AmountInvalid as OrderAmountInvalid
from tickets.errors import TicketClosed as ConversationClosed


class RemedyRefused(DomainError):
    """A remedy refused outright (422 by its code)."""


class BuyerBlacklisted(RemedyRefused):
    code = "buyer_blacklisted"
    default_detail = "This buyer is blacklisted and gets no remedy."


class OrderNotEligible(RemedyRefused):
    code = "order_not_eligible"
    default_detail = "The ticket's order cannot take this remedy."


class AmountInvalid(OrderAmountInvalid):
    default_detail = "The amount is not valid for this remedy."


class TicketClosed(ConversationClosed):
    default_detail = "The ticket is closed or resolved; reopen it first."


class RemedyDecided(AlreadyDecided):
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
