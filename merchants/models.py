from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class Merchant(models.Model):
    code = models.CharField(_("code"), max_length=32, unique=True)
    name = models.CharField(_("name"), max_length=128)
    contact_phone = models.CharField(_("contact phone"), max_length=32, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    # the latest ``CreditScore.score``, kept here for lists
    credit_score = models.PositiveSmallIntegerField(_("credit score"), default=100)

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
    # indexed by the (buyer, placed_at) index, which leads with it
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, db_index=False, related_name="orders")
    # indexed by the (merchant, placed_at) index, which leads with it
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, db_index=False, related_name="orders")
    items = models.JSONField(_("items"), default=list, help_text="[{sku, name, variant, qty, price_fen}]")
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.PAID)
    escrow_status = models.CharField(
        _("escrow status"), max_length=16, choices=EscrowStatus.choices, default=EscrowStatus.PENDING
    )
    shipping_address = models.CharField(_("shipping address"), max_length=255, blank=True)
    ship_by = models.DateTimeField(_("promised to ship by"), null=True, blank=True)
    region = models.CharField(_("region"), max_length=32, blank=True)
    placed_at = models.DateTimeField(_("placed at"))
    released_at = models.DateTimeField(_("released to merchant at"), null=True, blank=True)
    # disputes on an order still in escrow: while above zero it is not released
    open_disputes = models.PositiveSmallIntegerField(_("open disputes"), default=0)
    refunded_fen = models.BigIntegerField(_("refunded (fen)"), default=0)

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
            models.CheckConstraint(
                condition=models.Q(refunded_fen__gte=0, refunded_fen__lte=models.F("amount_fen")),
                name="order_refund_within_amount",
            ),
        ]

    def __str__(self) -> str:
        return self.order_no

    @property
    def refundable_fen(self) -> int:
        return self.amount_fen - self.refunded_fen


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
        indexes = [models.Index(fields=["shipped_at"], name="shipment_shipped")]  # the carrier report's period
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


# --- escrow, deposit, holds, payouts -------------------------------------------
#
# Money is integer fen. ``MerchantAccount`` keeps the running totals that every
# read needs in one row (and that payouts lock); ``Movement`` is the append-only
# record each total is the sum of. Tickets are referred to by ``ticket_id``
# without a foreign key: ``merchants`` sits below ``tickets`` and never imports it.


class MerchantAccount(models.Model):
    merchant = models.OneToOneField(Merchant, on_delete=models.CASCADE, related_name="account")
    pending_fen = models.BigIntegerField(_("pending in escrow (fen)"), default=0)
    available_fen = models.BigIntegerField(_("available (fen)"), default=0)
    deposit_fen = models.BigIntegerField(_("deposit (fen)"), default=0)
    held_fen = models.BigIntegerField(_("held by disputes (fen)"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("merchant account")
        verbose_name_plural = _("merchant accounts")
        constraints = [
            models.CheckConstraint(condition=models.Q(pending_fen__gte=0), name="account_pending_non_negative"),
            models.CheckConstraint(condition=models.Q(available_fen__gte=0), name="account_available_non_negative"),
            models.CheckConstraint(condition=models.Q(deposit_fen__gte=0), name="account_deposit_non_negative"),
            models.CheckConstraint(condition=models.Q(held_fen__gte=0), name="account_held_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.merchant} account"


class Movement(models.Model):
    """One append-only change to one bucket of a merchant's money."""

    class Bucket(models.TextChoices):
        PENDING = "pending", _("Pending in escrow")
        AVAILABLE = "available", _("Available")
        DEPOSIT = "deposit", _("Deposit")

    class Kind(models.TextChoices):
        ORDER_PAID = "order_paid", _("Order paid into escrow")
        ORDER_RELEASED = "order_released", _("Order released to merchant")
        ORDER_REFUNDED = "order_refunded", _("Order refunded from escrow")
        REFUND = "refund", _("Refund taken from merchant")
        DEPOSIT_TOPUP = "deposit_topup", _("Deposit top-up")
        DEPOSIT_DEDUCTION = "deposit_deduction", _("Deposit deduction")
        PAYOUT = "payout", _("Payout")
        PAYOUT_RETURNED = "payout_returned", _("Failed payout returned")
        ORDER_CANCELLED = "order_cancelled", _("Order cancelled, returned to the buyer")
        ORDER_RESTORED = "order_restored", _("Cancelled order restored into escrow")

    # indexed by movement_merchant_bucket, which leads with it
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, db_index=False, related_name="movements")
    bucket = models.CharField(_("bucket"), max_length=16, choices=Bucket.choices)
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    order = models.ForeignKey("Order", on_delete=models.PROTECT, null=True, blank=True, related_name="movements")
    hold = models.ForeignKey("FundHold", on_delete=models.PROTECT, null=True, blank=True, related_name="movements")
    payout = models.ForeignKey("Payout", on_delete=models.PROTECT, null=True, blank=True, related_name="movements")
    note = models.CharField(_("note"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("movement")
        verbose_name_plural = _("movements")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["merchant", "bucket"], name="movement_merchant_bucket")]
        constraints = [models.CheckConstraint(condition=~models.Q(amount_fen=0), name="movement_amount_nonzero")]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount_fen} ({self.bucket})"


class FundHold(models.Model):
    """A dispute's hold on a merchant's money, covered by the deposit first."""

    class Status(models.TextChoices):
        HELD = "held", _("Held")
        RELEASED = "released", _("Released")
        CONVERTED = "converted", _("Converted to refund")

    # indexed by hold_merchant_status, which leads with it
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, db_index=False, related_name="holds")
    order = models.ForeignKey("Order", on_delete=models.PROTECT, related_name="holds")
    ticket_id = models.BigIntegerField(_("ticket id"), db_index=True)
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    reason = models.CharField(_("reason"), max_length=255)
    release_condition = models.CharField(_("what releases it"), max_length=255)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.HELD)
    placed_at = models.DateTimeField(_("placed at"), default=timezone.now)
    settled_at = models.DateTimeField(_("released or converted at"), null=True, blank=True)

    class Meta:
        verbose_name = _("fund hold")
        verbose_name_plural = _("fund holds")
        ordering = ["-placed_at", "-id"]
        indexes = [models.Index(fields=["merchant", "status", "-placed_at", "-id"], name="hold_merchant_status")]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_fen__gt=0), name="hold_amount_positive"),
            models.UniqueConstraint(
                fields=["ticket_id"], condition=models.Q(status="held"), name="hold_one_active_per_ticket"
            ),
            # however many tickets dispute an order, its money is held once
            models.UniqueConstraint(fields=["order"], condition=models.Q(status="held"), name="hold_one_active_per_order"),
        ]

    def __str__(self) -> str:
        return f"hold {self.amount_fen} on {self.merchant} for ticket #{self.ticket_id}"


class Payout(models.Model):
    """A withdrawal: the amount leaves available at once. A merchant whose
    credit is below the policy's threshold waits for a supervisor
    (``awaiting_review``): approved it goes to the bank (``requested``),
    rejected the amount returns to available."""

    class Status(models.TextChoices):
        AWAITING_REVIEW = "awaiting_review", _("Awaiting a supervisor's review")
        REQUESTED = "requested", _("Requested")
        PAID = "paid", _("Paid")
        FAILED = "failed", _("Failed")
        REJECTED = "rejected", _("Rejected on review")

    # indexed by payout_idempotency_unique, which leads with it
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, db_index=False, related_name="payouts")
    amount_fen = models.BigIntegerField(_("amount (fen)"))
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.REQUESTED)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    idempotency_key = models.CharField(_("idempotency key"), max_length=128)
    request_hash = models.CharField(_("request hash"), max_length=64)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    settled_at = models.DateTimeField(_("settled at"), null=True, blank=True)
    failure_reason = models.CharField(_("failure reason"), max_length=255, blank=True)
    review_reason = models.JSONField(_("why reviewed"), default=dict, blank=True,
                                     help_text="why it waits for a supervisor: {credit_score, threshold}")
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+", verbose_name=_("reviewed by"))
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)
    review_note = models.CharField(_("review note"), max_length=255, blank=True)

    class Meta:
        verbose_name = _("payout")
        verbose_name_plural = _("payouts")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(amount_fen__gt=0), name="payout_amount_positive"),
            models.UniqueConstraint(fields=["merchant", "idempotency_key"], name="payout_idempotency_unique"),
        ]

    def __str__(self) -> str:
        return f"payout {self.amount_fen} {self.status}"


class ResendTask(models.Model):
    """A compelled resend: the merchant ships again by the deadline, entering
    the carrier and tracking number; a missed deadline costs credit."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        FULFILLED = "fulfilled", _("Fulfilled")
        MISSED = "missed", _("Missed")

    # indexed by resend_merchant_status, which leads with it
    merchant = models.ForeignKey(Merchant, on_delete=models.PROTECT, db_index=False, related_name="resend_tasks")
    order = models.ForeignKey("Order", on_delete=models.PROTECT, related_name="resend_tasks")
    ticket_id = models.BigIntegerField(_("ticket id"), db_index=True)
    reason = models.CharField(_("reason"), max_length=255)
    status = models.CharField(_("status"), max_length=16, choices=Status.choices, default=Status.OPEN)
    deadline_at = models.DateTimeField(_("deadline"))
    carrier = models.CharField(_("carrier"), max_length=32, blank=True)
    tracking_no = models.CharField(_("tracking no."), max_length=64, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    fulfilled_at = models.DateTimeField(_("fulfilled at"), null=True, blank=True)
    missed_at = models.DateTimeField(_("missed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("resend task")
        verbose_name_plural = _("resend tasks")
        ordering = ["deadline_at", "id"]
        indexes = [models.Index(fields=["merchant", "status", "deadline_at"], name="resend_merchant_status")]

    def __str__(self) -> str:
        return f"resend {self.order} by {self.deadline_at:%Y-%m-%d %H:%M} ({self.status})"


class OrderChange(models.Model):
    """One change an agent made to an order before shipment (its history)."""

    order = models.ForeignKey("Order", on_delete=models.CASCADE, related_name="changes")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changes = models.JSONField(_("changes"), help_text="{field: [before, after]}")
    ticket_id = models.BigIntegerField(_("ticket id"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("order change")
        verbose_name_plural = _("order changes")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.order} changed {sorted(self.changes)}"


class CreditScore(models.Model):
    """A merchant's credit score as computed at one time, with its parts."""

    # indexed by credit_merchant_recent, which leads with it
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, db_index=False, related_name="credit_scores")
    score = models.PositiveSmallIntegerField(_("score"))
    dispute_rate = models.FloatField(_("dispute rate"))
    on_time_shipping = models.FloatField(_("on-time shipping"))
    resend_compliance = models.FloatField(_("resend compliance"))
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)

    class Meta:
        verbose_name = _("credit score")
        verbose_name_plural = _("credit scores")
        ordering = ["-computed_at", "-id"]
        indexes = [models.Index(fields=["merchant", "-computed_at"], name="credit_merchant_recent")]
        constraints = [models.CheckConstraint(condition=models.Q(score__lte=100), name="credit_score_max_100")]

    def __str__(self) -> str:
        return f"{self.merchant}: {self.score}"


class CreditPolicy(models.Model):
    """What a low credit score does, one row (pk=1), changed by supervisors,
    every change kept in ``CreditPolicyChange`` (the pattern of the
    compensation policy, which ``merchants`` cannot import). Below each
    threshold (score < threshold; 0 turns the rule off): a new dispute holds
    the full order amount at once even while the money is in escrow; a payout
    waits for a supervisor's review; a compelled resend is due sooner."""

    dispute_hold_below = models.PositiveSmallIntegerField(_("disputes hold at once below score"), default=60)
    payout_review_below = models.PositiveSmallIntegerField(_("payouts reviewed below score"), default=60)
    short_resend_below = models.PositiveSmallIntegerField(_("shorter resend deadline below score"), default=60)
    resend_hours = models.PositiveSmallIntegerField(_("resend deadline (hours)"), default=48)
    short_resend_hours = models.PositiveSmallIntegerField(_("shorter resend deadline (hours)"), default=24)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("credit policy")
        verbose_name_plural = _("credit policy")
        constraints = [
            models.CheckConstraint(condition=models.Q(dispute_hold_below__lte=101, payout_review_below__lte=101,
                                                      short_resend_below__lte=101),
                                   name="creditpolicy_thresholds_in_range"),
            models.CheckConstraint(condition=models.Q(short_resend_hours__gte=1, resend_hours__gte=1),
                                   name="creditpolicy_hours_positive"),
        ]

    def __str__(self) -> str:
        return "credit policy"


class CreditPolicyChange(models.Model):
    changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    changes = models.JSONField(_("changes"), help_text="{field: [before, after]}")
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("credit policy change")
        verbose_name_plural = _("credit policy changes")
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"credit policy change by {self.changed_by} at {self.created_at:%Y-%m-%d %H:%M}"


class OrderCancellation(models.Model):
    """Staff cancelled a paid order before shipment: who, why, what went from
    escrow back to the buyer, and until when it can be undone (restored) if
    nothing happened to the order since. At most one active (not restored)
    cancellation per order."""

    order = models.ForeignKey("Order", on_delete=models.PROTECT, related_name="cancellations")
    cancelled_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(_("reason"), max_length=255)
    returned_fen = models.BigIntegerField(_("returned from escrow (fen)"))
    escrow_status_before = models.CharField(_("escrow status before"), max_length=16,
                                            choices=Order.EscrowStatus.choices)
    cancelled_at = models.DateTimeField(_("cancelled at"), default=timezone.now)
    undo_until = models.DateTimeField(_("can be undone until"))
    # the order's last movement when it was cancelled: a later one means money
    # moved since (every writer of an order's movements holds the order's lock)
    movement_mark = models.BigIntegerField(_("last movement id at cancel"), default=0)
    restored_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                    related_name="+")
    restored_at = models.DateTimeField(_("restored at"), null=True, blank=True)

    class Meta:
        verbose_name = _("order cancellation")
        verbose_name_plural = _("order cancellations")
        ordering = ["-cancelled_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=models.Q(returned_fen__gte=0), name="cancellation_returned_non_negative"),
            models.UniqueConstraint(fields=["order"], condition=models.Q(restored_at__isnull=True),
                                    name="cancellation_one_active_per_order"),
        ]

    def __str__(self) -> str:
        return f"{self.order} cancelled at {self.cancelled_at:%Y-%m-%d %H:%M}"


class VariantStock(models.Model):
    """How many of one variant (colour, size) of a merchant's item are on hand:
    a colour or size change before shipment takes one from the new variant and
    gives one back to the old ("if stock allows", the order-platform measures).
    A variant without a row has none in stock."""

    # indexed by stock_one_row_per_variant, which leads with it
    merchant = models.ForeignKey(Merchant, on_delete=models.CASCADE, db_index=False, related_name="stock")
    sku = models.CharField(_("SKU"), max_length=64)
    variant = models.CharField(_("variant"), max_length=64)
    on_hand = models.PositiveIntegerField(_("on hand"), default=0)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("variant stock")
        verbose_name_plural = _("variant stock")
        ordering = ["merchant", "sku", "variant"]
        constraints = [
            models.UniqueConstraint(fields=["merchant", "sku", "variant"], name="stock_one_row_per_variant"),
            models.CheckConstraint(condition=models.Q(on_hand__gte=0), name="stock_on_hand_non_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.variant}: {self.on_hand}"


class ShipmentIntercept(models.Model):
    """A carrier intercept request on a shipment that is on its way (the parcel
    goes back to the merchant), made together with a compelled resend of the
    order: the "intercept and resend" that remains once an order shipped."""

    shipment = models.OneToOneField(Shipment, on_delete=models.PROTECT, related_name="intercept")
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="intercepts")
    resend_task = models.OneToOneField(ResendTask, on_delete=models.PROTECT, related_name="intercept")
    ticket_id = models.BigIntegerField(_("ticket id"), null=True, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reason = models.CharField(_("reason"), max_length=255)
    shipment_status_before = models.CharField(_("logistics status when requested"), max_length=20)
    requested_at = models.DateTimeField(_("requested at"), default=timezone.now)

    class Meta:
        verbose_name = _("shipment intercept")
        verbose_name_plural = _("shipment intercepts")
        ordering = ["-requested_at", "-id"]

    def __str__(self) -> str:
        return f"intercept {self.shipment} ({self.order})"
