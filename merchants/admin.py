from django.contrib import admin

from merchants.models import Merchant, MerchantStaff, Order, Shipment, ShipmentEvent


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
