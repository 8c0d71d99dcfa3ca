import factory
from django.utils import timezone

from accounts import roles
from accounts.tests.factories import UserFactory
from merchants.models import Merchant, MerchantStaff, Order, Shipment


class MerchantFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Merchant

    code = factory.Sequence(lambda n: f"M{n:04d}")
    name = factory.Sequence(lambda n: f"测试商家{n}")


class OrderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Order

    order_no = factory.Sequence(lambda n: f"DD{n:010d}")
    buyer = factory.SubFactory(UserFactory, role=roles.BUYER)
    merchant = factory.SubFactory(MerchantFactory)
    items = factory.LazyFunction(lambda: [{"sku": "S1", "name": "蓝牙耳机", "variant": "白色", "qty": 1, "price_fen": 19900}])
    amount_fen = 19900
    status = Order.Status.SHIPPED
    placed_at = factory.LazyFunction(timezone.now)


class ShipmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Shipment

    order = factory.SubFactory(OrderFactory)
    carrier = "顺丰速运"
    tracking_no = factory.Sequence(lambda n: f"SF{n:012d}")
    status = Shipment.Status.IN_TRANSIT
    shipped_at = factory.LazyFunction(timezone.now)
    eta = factory.LazyFunction(lambda: (timezone.now() + timezone.timedelta(days=2)).date())


def make_merchant_staff(merchant: Merchant | None = None, **kwargs):
    user = UserFactory(role=roles.MERCHANT_STAFF, **kwargs)
    MerchantStaff.objects.create(user=user, merchant=merchant or MerchantFactory())
    return user


def paid_order(*, merchant, buyer=None, amount_fen: int = 19900, released: bool = False, **kwargs) -> Order:
    """An order paid into escrow through the service; ``released`` confirms it."""
    from merchants import services

    order = OrderFactory(merchant=merchant, amount_fen=amount_fen, **({"buyer": buyer} if buyer else {}), **kwargs)
    services.record_order_paid(order=order)
    if released:
        services.confirm_receipt(actor=order.buyer, order_id=order.pk)
        order.refresh_from_db()
    return order


def fund(merchant, *, available_fen: int = 0, deposit_fen: int = 0, pending_fen: int = 0) -> None:
    """Give a merchant money the way real money arrives: orders and a deposit top-up."""
    from merchants import services

    if available_fen:
        paid_order(merchant=merchant, amount_fen=available_fen, released=True)
    if pending_fen:
        paid_order(merchant=merchant, amount_fen=pending_fen)
    if deposit_fen:
        lead = UserFactory(role=roles.SUPERVISOR)
        services.top_up_deposit(actor=lead, merchant_id=merchant.pk, amount_fen=deposit_fen)
