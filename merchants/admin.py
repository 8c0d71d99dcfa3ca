from django.contrib import admin

from core.admin import ReadOnlyAdmin
from merchants.models import (
    CreditPolicy,
    CreditPolicyChange,
    CreditScore,
    FundHold,
    Merchant,
    MerchantAccount,
    MerchantStaff,
    Movement,
    Order,
    OrderCancellation,
    OrderChange,
    Payout,
    ResendTask,
    Shipment,
    ShipmentEvent,
    ShipmentIntercept,
    VariantStock,
)


class MerchantStaffInline(admin.TabularInline):
    model = MerchantStaff
    extra = 0
    raw_id_fields = ("user",)


@admin.register(Merchant)
class MerchantAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "contact_phone", "created_at")
    search_fields = ("code", "name")
    inlines = [MerchantStaffInline]


@admin.register(MerchantStaff)
class MerchantStaffAdmin(admin.ModelAdmin):
    list_display = ("user", "merchant")
    raw_id_fields = ("user",)
    list_select_related = ("user", "merchant")


class ShipmentInline(admin.StackedInline):
    model = Shipment
    extra = 0


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ("order_no", "buyer", "merchant", "amount_fen", "status", "escrow_status", "placed_at")
    list_filter = ("status", "escrow_status")
    search_fields = ("order_no",)
    raw_id_fields = ("buyer",)
    list_select_related = ("buyer", "merchant")
    inlines = [ShipmentInline]


class ShipmentEventInline(admin.TabularInline):
    model = ShipmentEvent
    extra = 0


@admin.register(Shipment)
class ShipmentAdmin(admin.ModelAdmin):
    list_display = ("tracking_no", "carrier", "status", "order", "shipped_at", "eta")
    list_filter = ("carrier", "status")
    search_fields = ("tracking_no", "order__order_no")
    raw_id_fields = ("order",)
    inlines = [ShipmentEventInline]


@admin.register(ShipmentEvent)
class ShipmentEventAdmin(admin.ModelAdmin):
    list_display = ("shipment", "occurred_at", "location", "description")
    raw_id_fields = ("shipment",)


@admin.register(MerchantAccount)
class MerchantAccountAdmin(ReadOnlyAdmin):
    list_display = ("merchant", "pending_fen", "available_fen", "deposit_fen", "held_fen", "updated_at")
    list_select_related = ("merchant",)


@admin.register(Movement)
class MovementAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "merchant", "bucket", "kind", "amount_fen", "order", "payout", "hold")
    list_filter = ("bucket", "kind")
    list_select_related = ("merchant", "order")


@admin.register(FundHold)
class FundHoldAdmin(ReadOnlyAdmin):
    list_display = ("merchant", "order", "ticket_id", "amount_fen", "status", "placed_at", "settled_at")
    list_filter = ("status",)
    list_select_related = ("merchant", "order")


@admin.register(Payout)
class PayoutAdmin(ReadOnlyAdmin):
    list_display = ("merchant", "amount_fen", "status", "requested_by", "created_at", "reviewed_by", "settled_at")
    list_filter = ("status",)
    list_select_related = ("merchant", "requested_by", "reviewed_by")


@admin.register(ResendTask)
class ResendTaskAdmin(ReadOnlyAdmin):
    list_display = ("order", "merchant", "ticket_id", "status", "deadline_at", "tracking_no", "fulfilled_at")
    list_filter = ("status",)
    list_select_related = ("order", "merchant")


@admin.register(OrderChange)
class OrderChangeAdmin(ReadOnlyAdmin):
    list_display = ("order", "actor", "created_at")
    list_select_related = ("order", "actor")


@admin.register(CreditScore)
class CreditScoreAdmin(ReadOnlyAdmin):
    list_display = ("merchant", "score", "dispute_rate", "on_time_shipping", "resend_compliance", "computed_at")
    list_select_related = ("merchant",)


@admin.register(OrderCancellation)
class OrderCancellationAdmin(ReadOnlyAdmin):
    list_display = ("order", "cancelled_by", "returned_fen", "cancelled_at", "undo_until", "restored_by", "restored_at")
    list_select_related = ("order", "cancelled_by", "restored_by")


@admin.register(CreditPolicy)
class CreditPolicyAdmin(ReadOnlyAdmin):
    """Changed through ``update_credit_policy`` (the API), which keeps the audit."""

    list_display = ("dispute_hold_below", "payout_review_below", "short_resend_below", "resend_hours",
                    "short_resend_hours", "updated_at")


@admin.register(CreditPolicyChange)
class CreditPolicyChangeAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "changed_by", "changes", "reason")
    list_select_related = ("changed_by",)


@admin.register(VariantStock)
class VariantStockAdmin(admin.ModelAdmin):
    """What each variant has on hand (a colour or size change before shipment needs it)."""

    list_display = ("merchant", "sku", "variant", "on_hand", "updated_at")
    list_filter = ("merchant",)
    search_fields = ("sku", "variant")
    list_select_related = ("merchant",)


@admin.register(ShipmentIntercept)
class ShipmentInterceptAdmin(ReadOnlyAdmin):
    list_display = ("order", "shipment", "requested_by", "ticket_id", "resend_task", "requested_at")
    list_select_related = ("order", "shipment", "requested_by", "resend_task")
