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
