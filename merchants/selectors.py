"""Reads of merchants and orders, always scoped to the viewer."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ObjectDoesNotExist
from django.db import connection
from django.db.models import Count, Min, QuerySet

from accounts.roles import is_agent, is_buyer, is_merchant_staff, is_supervisor
from core.errors import NotFound, PermissionDenied
from core.rows import Columns, cache_related, column, prepared_cursor, split, table
from merchants import rules
from merchants.escrow import Figures
from merchants.models import (
    CreditScore,
    FundHold,
    Merchant,
    MerchantAccount,
    MerchantStaff,
    Order,
    OrderChange,
    Payout,
    ResendTask,
    Shipment,
    ShipmentIntercept,
    VariantStock,
)


def merchant_id_for(*, user) -> int | None:
    """The merchant a staff user acts for, or None."""
    if not is_merchant_staff(user):
        return None
    cached = getattr(user, "_merchant_id_cache", False)
    if cached is not False:
        return cached
    merchant_id = MerchantStaff.objects.filter(user=user).values_list("merchant_id", flat=True).first()
    user._merchant_id_cache = merchant_id
    return merchant_id


def merchant_for(*, user) -> Merchant | None:
    merchant_id = merchant_id_for(user=user)
    return Merchant.objects.filter(pk=merchant_id).first() if merchant_id else None


def _order_scope(*, user) -> tuple[str, int | None] | None:
    """Which orders ``user`` sees, the one rule for both readers below:
    ``("", None)`` every order (staff), ``(field, value)`` the orders whose
    ``field`` is ``value`` (a buyer their own, merchant staff their
    merchant's), None none."""
    if is_agent(user):
        return "", None
    if is_merchant_staff(user):
        merchant_id = merchant_id_for(user=user)
        return ("merchant", merchant_id) if merchant_id else None
    if is_buyer(user):
        return "buyer", user.pk
    return None


def orders_visible_to(*, user) -> QuerySet[Order]:
    """A buyer sees their own orders, merchant staff their merchant's, staff all."""
    orders = Order.objects.select_related("merchant", "shipment")
    scope = _order_scope(user=user)
    if scope is None:
        return orders.none()
    field, value = scope
    return orders.filter(**{f"{field}_id": value}) if field else orders


def visible_order(*, user, order_id: int) -> Order | None:
    """The order ``orders_visible_to(user=user).filter(pk=order_id).first()``
    finds, with its merchant and shipment as that query's ``select_related``
    leaves them, in one statement written once per process and scope: ticket
    intake looks up the buyer's order on every ticket, and the ORM spent ~1.8
    ms of CPU building that one query (ten times the round trip)."""
    scope = _order_scope(user=user)
    if scope is None:
        return None
    field, value = scope
    with prepared_cursor() as cursor:
        cursor.execute(_visible_order_sql(connection.vendor, field), {"order": order_id, "scope": value})
        row = cursor.fetchone()
    if row is None:
        return None
    order, merchant, shipment = split(row, _ORDER, _MERCHANT, _SHIPMENT)
    cache_related(order, "merchant", merchant)
    cache_related(order, "shipment", shipment)  # None: order.shipment raises DoesNotExist, as after select_related
    if shipment is not None:
        cache_related(shipment, "order", order)
    return order


_ORDER, _MERCHANT, _SHIPMENT = Columns(Order, "o"), Columns(Merchant, "m"), Columns(Shipment, "s")


@functools.cache
def _visible_order_sql(vendor: str, field: str) -> str:
    where = f"{column(Order, 'id', 'o')} = %(order)s"
    if field:
        where += f" AND {column(Order, field, 'o')} = %(scope)s"
    return (f"SELECT {_ORDER.sql()}, {_MERCHANT.sql()}, {_SHIPMENT.sql()} FROM {table(Order)} o "
            f"JOIN {table(Merchant)} m ON {column(Merchant, 'id', 'm')} = {column(Order, 'merchant', 'o')} "
            f"LEFT JOIN {table(Shipment)} s ON {column(Shipment, 'order', 's')} = {column(Order, 'id', 'o')} "
            f"WHERE {where}")


def get_order_for(*, user, order_id: int) -> Order:
    """One order the viewer may see; anything else is a 404 that reveals nothing."""
    order = visible_order(user=user, order_id=order_id)
    if order is None:
        raise NotFound("Order not found.")
    return order


def order_tickets_for(*, user, order: Order) -> list:
    """The order's tickets the viewer may see.

    Uses the reverse accessor of the ticket's order foreign key, so this lower
    app never imports ``tickets``. Merchant staff see the tickets that involve
    the merchant (party ``merchant`` or ``both``), never internal-only ones.
    """
    tickets = order.tickets.only("id", "category", "subject", "status", "created_at").order_by("-created_at")
    if is_agent(user):
        return list(tickets)
    if is_merchant_staff(user):
        if order.merchant_id != merchant_id_for(user=user):
            return []
        return list(tickets.filter(party__in=["merchant", "both"]))
    if is_buyer(user) and order.buyer_id == user.pk:
        return list(tickets.filter(buyer=user))
    return []


def get_merchant_for(*, user, merchant_id: int) -> Merchant:
    """Staff see every merchant, merchant staff only their own; else 404."""
    if is_agent(user) or (is_merchant_staff(user) and merchant_id_for(user=user) == merchant_id):
        merchant = Merchant.objects.filter(pk=merchant_id).first()
        if merchant is not None:
            return merchant
    raise NotFound("Merchant not found.")


HOLDS_SHOWN = 200


@dataclass(frozen=True)
class HoldLine:
    hold: FundHold
    withdrawable_if_released_fen: int


@dataclass(frozen=True)
class BalanceExplanation:
    merchant: Merchant
    figures: Figures
    holds: list[HoldLine]
    holds_truncated: bool
    disputed_in_escrow: list[Order]


def balance_explanation(*, merchant: Merchant) -> BalanceExplanation:
    """Every figure from balance to withdrawable, and every hold still held
    (newest first, at most 200) with what resolving it would free: four
    queries whatever the number of holds and orders."""
    account = MerchantAccount.objects.filter(merchant=merchant).first() or MerchantAccount(merchant=merchant)
    figures = Figures(account.pending_fen, account.available_fen, account.deposit_fen, account.held_fen)
    held = list(
        FundHold.objects.filter(merchant=merchant, status=FundHold.Status.HELD)
        .select_related("order")
        .order_by("-placed_at", "-id")[: HOLDS_SHOWN + 1]
    )
    lines = [HoldLine(h, figures.without_hold(h.amount_fen).withdrawable_fen) for h in held[:HOLDS_SHOWN]]
    disputed = list(
        Order.objects.filter(merchant=merchant, escrow_status=Order.EscrowStatus.PENDING, open_disputes__gt=0)
        .order_by("-placed_at")[:HOLDS_SHOWN]
    )
    return BalanceExplanation(merchant, figures, lines, len(held) > HOLDS_SHOWN, disputed)


# --- the portal's reads (always for one merchant) ---------------------------------


def resend_tasks_for(*, merchant: Merchant, open_only: bool | None = None) -> QuerySet[ResendTask]:
    """Open tasks nearest deadline first (``open_only=True``), the decided ones
    newest first (``False``), or all of them."""
    tasks = ResendTask.objects.filter(merchant=merchant).select_related("order")
    if open_only is True:
        return tasks.filter(status=ResendTask.Status.OPEN).order_by("deadline_at", "id")
    if open_only is False:
        return tasks.exclude(status=ResendTask.Status.OPEN).order_by("-created_at", "-id")
    return tasks.order_by("deadline_at", "id")


def get_task_for(*, merchant: Merchant, task_id: int) -> ResendTask | None:
    return resend_tasks_for(merchant=merchant).filter(pk=task_id).first()


def open_task_summary(*, merchant: Merchant) -> dict:
    """``{"count", "next_deadline"}`` of the merchant's open resend tasks (one query)."""
    return ResendTask.objects.filter(merchant=merchant, status=ResendTask.Status.OPEN).aggregate(
        count=Count("pk"), next_deadline=Min("deadline_at")
    )


def payouts_for(*, merchant: Merchant) -> QuerySet[Payout]:
    return Payout.objects.filter(merchant=merchant).order_by("-created_at", "-id")


def credit_history_for(*, merchant: Merchant, limit: int) -> list[CreditScore]:
    return list(CreditScore.objects.filter(merchant=merchant).order_by("-computed_at", "-id")[:limit])


def active_hold_for_ticket(*, merchant: Merchant, ticket_id: int) -> FundHold | None:
    return FundHold.objects.filter(merchant=merchant, ticket_id=ticket_id, status=FundHold.Status.HELD).first()


def order_changes_for(*, order: Order) -> list[OrderChange]:
    """The order's change history, newest first."""
    return list(order.changes.select_related("actor").order_by("-created_at", "-id")[:20])


# --- what is left once an order shipped, and the credit score's components -------------


@dataclass(frozen=True)
class RemainingOptions:
    options: list[str]
    applies: str


def options_after_shipment(order: Order) -> RemainingOptions:
    """What is left once an order shipped: intercept and resend while the
    parcel travels, return/exchange on receipt once delivered."""
    try:
        shipment_status = order.shipment.status
    except ObjectDoesNotExist:
        shipment_status = None
    options = ["intercept_and_resend", "return_or_exchange_on_receipt"]
    interceptable = rules.intercept_allowed(order_status=order.status, shipment_status=shipment_status)
    return RemainingOptions(options, options[0] if interceptable else options[1])


def variant_stock_for(*, order: Order) -> dict[str, list[tuple[str, int]]]:
    """The variants of the order's items the merchant keeps, with what is on
    hand, by SKU (one query): what a colour or size change may pick."""
    skus = [item.get("sku") for item in order.items or [] if isinstance(item, dict) and item.get("sku")]
    stock: dict[str, list[tuple[str, int]]] = {sku: [] for sku in skus}
    rows = (VariantStock.objects.filter(merchant_id=order.merchant_id, sku__in=skus)
            .order_by("sku", "variant").values_list("sku", "variant", "on_hand"))
    for sku, variant, on_hand in rows:
        stock[sku].append((variant, on_hand))
    return stock


def intercept_of(*, order: Order):
    """The order's carrier intercept request with its resend task, or None."""
    return (ShipmentIntercept.objects.select_related("resend_task", "requested_by")
            .filter(order_id=order.pk).order_by("-requested_at").first())


CREDIT_WINDOW = timedelta(days=90)
DEFAULT_SHIP_WITHIN = timedelta(hours=48)


def credit_components(*, merchant_id: int, now: datetime) -> tuple[float, float, float]:
    """(dispute rate, on-time shipping, resend compliance) over the last 90 days."""
    since = now - CREDIT_WINDOW
    orders = Order.objects.filter(merchant_id=merchant_id, placed_at__gte=since)
    order_count = orders.count()
    disputes = FundHold.objects.filter(merchant_id=merchant_id, placed_at__gte=since).count()
    dispute_rate = disputes / order_count if order_count else 0.0
    shipped = list(orders.filter(shipment__shipped_at__isnull=False).values_list(
        "placed_at", "ship_by", "shipment__shipped_at"))
    on_time = sum(1 for placed, ship_by, shipped_at in shipped if shipped_at <= (ship_by or placed + DEFAULT_SHIP_WITHIN))
    on_time_rate = on_time / len(shipped) if shipped else 1.0
    tasks = ResendTask.objects.filter(merchant_id=merchant_id, created_at__gte=since).exclude(status=ResendTask.Status.OPEN)
    done = tasks.filter(status=ResendTask.Status.FULFILLED).count()
    decided = tasks.count()
    compliance = done / decided if decided else 1.0
    return dispute_rate, on_time_rate, compliance


@dataclass(frozen=True)
class CreditStanding:
    """A merchant's score and what it does now under the credit policy."""

    merchant: Merchant
    score: int
    consequences: list[dict]  # {"rule", "threshold", "active"} (merchants.rules.credit_consequences)
    resend_hours: int

    @property
    def low(self) -> bool:
        """Some rule of the credit policy acts on this score now."""
        return any(c["active"] for c in self.consequences)


def credit_standing_for(*, merchant: Merchant) -> CreditStanding:
    """The score (``Merchant.credit_score``, the latest computed) and each
    rule of the credit policy with its threshold: the portal explains it to
    the merchant, the console's order panel shows it to agents."""
    from merchants import rules
    from merchants.services.credit_policy import get_credit_policy

    policy = get_credit_policy()
    score = merchant.credit_score
    return CreditStanding(merchant=merchant, score=score,
                          consequences=rules.credit_consequences(score=score, policy=policy),
                          resend_hours=rules.resend_deadline_hours(score=score, policy=policy))


def payouts_awaiting_review(*, user):
    """Supervisors: the payouts waiting for their review, oldest first."""
    from merchants.models import Payout

    if not is_supervisor(user):
        raise PermissionDenied("Only supervisors review payouts.")
    return (Payout.objects.filter(status=Payout.Status.AWAITING_REVIEW).select_related("merchant", "requested_by")
            .order_by("created_at", "id"))


def credit_policy_history(*, limit: int = 50) -> list:
    from merchants.models import CreditPolicyChange

    return list(CreditPolicyChange.objects.select_related("changed_by").order_by("-created_at", "-id")[:limit])
