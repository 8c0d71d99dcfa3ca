"""Pure decisions of ``compensation``: no queries, no writes.

The services apply them under their locks; the remedy panel asks the same
functions before any click, the API and the console show their answers, and
``Remedy.cost_fen`` is ``remedy_cost``. One rule, one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from compensation.errors import AmountInvalid, BuyerBlacklisted, DomainError, OrderNotEligible, TicketClosed

# why a remedy goes to a supervisor instead of executing (API.md's words)
REASON_QUOTA = "quota_exhausted"
REASON_VALUE = "over_value_cap"
REASON_BUYER_CAP = "buyer_daily_cap"
REASON_BREAKER = "breaker_open"
REASON_FLAGGED = "buyer_flagged"
REASON_COUPON_AMOUNT = "coupon_amount"

KIND_REFUND, KIND_RESEND, KIND_COUPON = "refund", "resend", "coupon"


@dataclass(frozen=True)
class Caps:
    """The policy and what is used of it, read in one query at the start of a
    remedy (``compensation.counters.caps_snapshot``). The counters themselves
    are taken later by conditional updates; this only decides the route."""

    value_cap_fen: int
    coupon_fen: int
    coupon_max_fen: int
    coupon_days: int
    agent_monthly_quota: int
    buyer_daily_cap: int
    daily_budget_fen: int
    quota_used: int
    buyer_count: int
    spent_fen: int
    budget_fen: int
    breaker_open: bool
    blacklisted: bool

    @property
    def quota_left(self) -> int:
        return max(0, self.agent_monthly_quota - self.quota_used)


def remedy_cost(*, kind: str, amount_fen: int, with_coupon: bool, coupon_fen: int) -> int:
    """What a remedy spends of the day's compensation budget: the cash of a
    refund or a coupon, plus the coupon that goes with a refund or resend."""
    spent = amount_fen if kind in (KIND_REFUND, KIND_COUPON) else 0
    return spent + (coupon_fen if with_coupon else 0)


def amount_for(*, kind: str, amount_fen, refundable_fen: int, caps: Caps) -> int:
    """The remedy's amount: a refund defaults to what is left refundable, a
    coupon to the policy's value and never past the policy's absolute maximum;
    a resend has none. Refuses (422 ``amount_invalid``) what cannot be."""
    if amount_fen is not None and (isinstance(amount_fen, bool) or not isinstance(amount_fen, int)):
        raise AmountInvalid()
    if kind == KIND_REFUND:
        amount = refundable_fen if amount_fen is None else amount_fen
        if not 0 < amount <= refundable_fen:
            raise AmountInvalid(f"A refund is 1 to {refundable_fen} fen (what is left refundable on the order).")
        return amount
    if kind == KIND_COUPON:
        amount = caps.coupon_fen if amount_fen is None else amount_fen
        if not 0 < amount <= caps.coupon_max_fen:
            raise AmountInvalid(f"A coupon is worth 1 to {caps.coupon_max_fen} fen.")
        return amount
    if amount_fen not in (None, 0):
        raise AmountInvalid("A resend has no amount.")
    return 0


def ineligibility(*, ticket, kind: str, blacklisted: bool) -> DomainError | None:
    """Why a remedy is refused outright on this ticket (422), or None.
    ``ticket`` carries its ``order``."""
    from tickets.models import Ticket

    if ticket.status in (Ticket.Status.RESOLVED, Ticket.Status.CLOSED):
        return TicketClosed()
    if ticket.buyer_id is None:
        return OrderNotEligible("A remedy goes to a buyer; this ticket has none.")
    if blacklisted:
        return BuyerBlacklisted()
    if kind in (KIND_REFUND, KIND_RESEND):
        from merchants.models import Order

        order = ticket.order
        if order is None or order.status == Order.Status.CANCELLED:
            return OrderNotEligible("A refund or resend needs the ticket's order.")
        if kind == KIND_RESEND and order.status == Order.Status.PAID:
            return OrderNotEligible("The order has not shipped; change or cancel it instead of a resend.")
    return None


def approval_reasons(*, caps: Caps, kind: str, amount_fen: int, cost_fen: int, order_amount_fen: int | None,
                     buyer_active: bool) -> list[str]:
    """Why this remedy cannot be self-service (empty: it can). Self-service
    needs all of: a coupon of exactly the policy's value, an order under the
    value cap, the agent's monthly quota not used up, the buyer's daily cap not
    reached, the day's budget not passed nor its breaker open, the buyer in
    good standing. The policy is the one in force now, for quotas already in use too."""
    reasons = []
    if caps.quota_used >= caps.agent_monthly_quota:
        reasons.append(REASON_QUOTA)
    if order_amount_fen is not None and order_amount_fen > caps.value_cap_fen:
        reasons.append(REASON_VALUE)
    if caps.buyer_count >= caps.buyer_daily_cap:
        reasons.append(REASON_BUYER_CAP)
    if caps.breaker_open or caps.spent_fen + cost_fen > caps.budget_fen:
        reasons.append(REASON_BREAKER)
    if not buyer_active:
        reasons.append(REASON_FLAGGED)
    if kind == KIND_COUPON and amount_fen != caps.coupon_fen:
        reasons.append(REASON_COUPON_AMOUNT)
    return reasons


def budget_percent(*, spent_fen: int, budget_fen: int) -> int:
    """How much of the day's budget is spent, for bars and the dashboard: a
    budget of 0 with nothing spent is 0 %, with anything spent it is full."""
    if budget_fen <= 0:
        return 100 if spent_fen > 0 else 0
    return min(100, round(100 * spent_fen / budget_fen))
