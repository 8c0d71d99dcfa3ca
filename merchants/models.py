from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Merchant(models.Model):
    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=128)
    contact_phone = models.CharField(_("contact phone"), max_length=32, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("merchant")
        verbose_name_plural = _("merchants")
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.name


class MerchantStaff(models.Model):
    """A user who acts for one merchant in the merchant portal."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="merchant_staff")
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, related_name="staff")

    class Meta:
        verbose_name = _("merchant staff")
        verbose_name_plural = _("merchant staff")

    def __str__(self) -> str:
        return f"{self.user} @ {self.merchant}"


class Order(models.Model):
    class Status(models.TextChoices):
        PAID = "paid", _("Paid, awaiting shipment")
        SHIPPED = "shipped", _("Shipped")
        DELIVERED = "delivered", _("Delivered")
        COMPLETED = "completed", _("Completed")
        CANCELLED = "cancelled", _("Cancelled")

    class EscrowStatus(models.TextChoices):
        PENDING = "pending", _("Held in escrow")
        RELEASED = "released", _("Released to merchant")
        REFUNDED = "refunded", _("Refunded")

    order_no = models.CharField(_("order no."), max_length=32, unique=True)
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, related_name="orders")
    items = models.JSONField(_("items"), default=list, help_text="[{sku, name, variant, qty, price_fen}]")
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PAID)
    escrow_status = models.CharField(
        _("escrow status"), max_length=16, choices=EscrowStatus.choices, default=EscrowStatus.PENDING
    )
    shipping_address = models.CharField(_("shipping address"), max_length=255, blank=True)
    region = models.CharField(_("region"), max_length=32, blank=True)
    placed_at = models.DateTimeField(_("placed at"))

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-placed_at", "-pk"]
        indexes = [
            models.Index(fields=["buyer", "-placed_at"]),
            models.Index(fields=["merchant", "-placed_at"]),
        ]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_fen__gte=0), name="order_amount_fen_non_negative"),
        ]

    def __str__(self) -> str:
        return self.order_no


class Shipment(models.Model):
    class Status(models.TextChoices):
        AWAITING_PICKUP = "awaiting_pickup", _("Awaiting pickup")
        IN_TRANSIT = "in_transit", _("In transit")
        OUT_FOR_DELIVERY = "out_for_delivery", _("Out for delivery")
        DELIVERED = "delivered", _("Delivered")
        EXCEPTION = "exception", _("Exception")
        RETURNED = "returned", _("Returned")

    order = models.OneToOneField(Order, on_delete=models.CASCADE, related_name="shipment")
    carrier = models.CharField(_("carrier"), max_length=32)
    tracking_no = models.CharField(_("tracking no."), max_length=64)
    status = models.CharField(_("logistics status"), max_length=20, choices=Status.choices)
    shipped_at = models.DateTimeField(_("shipped at"), null=True, blank=True)
    eta = models.DateField(_("estimated arrival"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("shipment")
        verbose_name_plural = _("shipments")
        constraints = [
            models.UniqueConstraint(fields=["carrier", "tracking_no"], name="shipment_carrier_tracking_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.carrier} {self.tracking_no}"


class ShipmentEvent(models.Model):
    """One line of the carrier's tracking history."""

    shipment = models.ForeignKey(Shipment, on_delete=models.CASCADE, related_name="events")
    occurred_at = models.DateTimeField(_("occurred at"))
    location = models.CharField(_("location"), max_length=64, blank=True)
    description = models.CharField(_("description"), max_length=255)

    class Meta:
        verbose_name = _("shipment event")
        verbose_name_plural = _("shipment events")
        ordering = ["shipment", "-occurred_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.occurred_at:%Y-%m-%d %H:%M} {self.description}"
