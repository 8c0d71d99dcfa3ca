"""Crafted account histories: logins and orders at chosen times."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from accounts import roles
from accounts.models import LoginEvent, User
from accounts.services import create_user
from accounts.tests.factories import UserFactory
from merchants.models import Order
from merchants.tests.factories import MerchantFactory, OrderFactory, paid_order
from risk.models import RiskHit

SHANGHAI = ZoneInfo("Asia/Shanghai")
# "now" of the crafted histories: Double-11 evening, Shanghai time
NOW = datetime(2026, 11, 11, 20, 30, tzinfo=SHANGHAI)


def buyer_account(*, joined: datetime | None = None, **kwargs) -> User:
    user = UserFactory(role=roles.BUYER, **kwargs)
    User.objects.filter(pk=user.pk).update(date_joined=joined or NOW - timedelta(days=800))
    user.refresh_from_db()
    return user


def integration_user() -> User:
    return create_user(username="order-system", password=None, role=roles.INTEGRATION)


def login(user: User, at: datetime, *, ip: str = "203.0.113.7", device: str = "dev-1") -> LoginEvent:
    return LoginEvent.objects.create(user=user, at=at, ip=ip, device=device, source=LoginEvent.Source.SESSION)


def order_at(user: User, at: datetime, *, merchant=None, amount_fen: int = 29_900, escrow: bool = False,
             status: str = Order.Status.PAID) -> Order:
    """An order placed at ``at``; ``escrow``: paid into escrow through the service (for cancels)."""
    merchant = merchant or MerchantFactory()
    if escrow:
        return paid_order(merchant=merchant, buyer=user, amount_fen=amount_fen, status=status, placed_at=at)
    return OrderFactory(buyer=user, merchant=merchant, amount_fen=amount_fen, status=status, placed_at=at)


def stolen_history(*, now: datetime = NOW, dormant_days: int = 120, hours_ago=(1, 5, 10), merchant=None,
                   escrow: bool = False, user: User | None = None) -> tuple[User, list[Order]]:
    """The pattern: the owner's last login ``dormant_days`` before the thief's
    sign-in (two hours before the first order), then orders at ``hours_ago``."""
    user = user or buyer_account()
    first = now - timedelta(hours=max(hours_ago))
    thief_login = first - timedelta(hours=2)
    login(user, thief_login - timedelta(days=dormant_days), ip="198.51.100.20", device="owner-phone")
    login(user, thief_login, ip="192.0.2.66", device="thief-laptop")
    merchant = merchant or MerchantFactory()
    orders = [order_at(user, now - timedelta(hours=h), merchant=merchant, escrow=escrow) for h in hours_ago]
    return user, orders


def open_hit(user: User, *, orders: int = 3, now: datetime = NOW) -> RiskHit:
    """A hit as the detector writes it, without running the detector."""
    placed = [now - timedelta(hours=h) for h in range(1, orders + 1)]
    evidence = {
        "orders": [{"order_id": i, "order_no": f"DD{user.pk:05d}{i:03d}", "placed_at": at.isoformat(),
                    "hour": at.astimezone(SHANGHAI).hour, "amount_fen": 29_900} for i, at in enumerate(placed)],
        "slots": sorted({at.astimezone(SHANGHAI).hour for at in placed}), "order_count": orders, "window_hours": 24,
        "last_seen_at": (now - timedelta(days=150)).isoformat(), "last_seen_kind": "login",
        "reactivated_at": (now - timedelta(hours=orders + 2)).isoformat(), "dormant_days": 150,
        "thresholds": {"dormant_days": 90, "window_hours": 24, "min_orders": 3, "min_slots": 3},
    }
    return RiskHit.objects.create(user=user, rule=RiskHit.Rule.DORMANT_BURST, evidence=evidence,
                                  first_order_at=min(placed), last_order_at=max(placed), detected_at=now)
