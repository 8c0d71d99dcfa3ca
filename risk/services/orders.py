"""Cancelling an account's pending orders in bulk, and the undo: each order in
its own transaction through ``merchants``, the audit line after them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from core.errors import DomainError
from merchants import services as merchant_services
from merchants.models import Order
from risk import rules, selectors
from risk.errors import InvalidInput
from risk.locks import lock_user
from risk.models import AccountAction
from risk.services.common import buyer_account, clean_reason, close_open_hits, require_supervisor


@dataclass
class BulkOrdersResult:
    done: list[Order] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)  # (order id, error code)
    undo_until: datetime | None = None


def _orders_of(user_id: int, order_ids) -> dict[int, Order]:
    if not isinstance(order_ids, list | tuple) or not order_ids or len(order_ids) > rules.MAX_BULK_ORDERS \
            or not all(isinstance(i, int) and not isinstance(i, bool) for i in order_ids):
        raise InvalidInput(f"order_ids is a list of 1–{rules.MAX_BULK_ORDERS} order ids.", field="order_ids")
    return {o.pk: o for o in Order.objects.filter(buyer_id=user_id, pk__in=order_ids)}


def cancel_pending_orders(*, actor, user_id: int, reason: str, order_ids: list[int] | None = None,
                          now: datetime | None = None) -> BulkOrdersResult:
    """Cancel the account's pending (paid, unshipped) orders — those in
    ``order_ids``, the ones the supervisor confirmed, or all of them.

    Not one transaction on purpose: each order is cancelled in its own
    (``merchants.services.cancel_order``: order → merchant account), so an
    order that ships meanwhile is skipped with its code instead of rolling
    back the others, and each can be undone on its own. The audit line and
    the hit's review commit after them.
    """
    require_supervisor(actor)
    reason = clean_reason(reason)
    now = now or timezone.now()
    account = buyer_account(User.objects.filter(pk=user_id).first())
    if order_ids is None:
        targets = selectors.pending_orders_of(user_id=account.pk)
        wanted = [o.pk for o in targets]
    else:
        by_id = _orders_of(account.pk, order_ids)
        wanted = list(dict.fromkeys(order_ids))
    result = BulkOrdersResult()
    for order_id in wanted:
        if order_ids is not None and order_id not in by_id:
            result.skipped.append((order_id, "not_found"))
            continue
        try:
            cancellation = merchant_services.cancel_order(actor=actor, order_id=order_id, reason=reason, now=now)
        except DomainError as refused:
            result.skipped.append((order_id, refused.code))
            continue
        result.done.append(cancellation.order)
        result.undo_until = cancellation.undo_until
    _record_bulk(account=account, kind=AccountAction.Kind.CANCEL_ORDERS, actor=actor, reason=reason, now=now,
                 result=result, close_hits=True)
    return result


def restore_cancelled_orders(*, actor, user_id: int, order_ids: list[int],
                             now: datetime | None = None) -> BulkOrdersResult:
    """Undo a bulk cancel, order by order, within the undo window."""
    require_supervisor(actor)
    now = now or timezone.now()
    account = buyer_account(User.objects.filter(pk=user_id).first())
    by_id = _orders_of(account.pk, order_ids)
    result = BulkOrdersResult()
    for order_id in dict.fromkeys(order_ids):
        if order_id not in by_id:
            result.skipped.append((order_id, "not_found"))
            continue
        try:
            result.done.append(merchant_services.restore_order(actor=actor, order_id=order_id, now=now))
        except DomainError as refused:
            result.skipped.append((order_id, refused.code))
    _record_bulk(account=account, kind=AccountAction.Kind.RESTORE_ORDERS, actor=actor, reason="undo", now=now,
                 result=result, close_hits=False)
    return result


@transaction.atomic(durable=True)
def _record_bulk(*, account: User, kind: str, actor, reason: str, now: datetime, result: BulkOrdersResult,
                 close_hits: bool) -> None:
    lock_user(account.pk)
    hit = close_open_hits(user_id=account.pk, actor=actor, now=now, note=reason) if close_hits and result.done else None
    AccountAction.objects.create(
        user=account, kind=kind, actor=actor, hit=hit, reason=reason, created_at=now,
        data={"order_ids": [o.pk for o in result.done], "skipped": [list(s) for s in result.skipped],
              **({"undo_until": result.undo_until.isoformat()} if result.undo_until else {})},
    )
