from django.contrib import admin

from core.admin import ReadOnlyAdmin
from risk.models import AccountAction, OwnerVerification, RiskHit


@admin.register(RiskHit)
class RiskHitAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "rule", "status", "first_order_at", "last_order_at", "detected_at", "reviewed_by")
    list_filter = ("status", "rule")
    list_select_related = ("user", "reviewed_by")
    search_fields = ("user__username",)


@admin.register(AccountAction)
class AccountActionAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "kind", "actor", "reason")
    list_filter = ("kind",)
    list_select_related = ("user", "actor")
    search_fields = ("user__username",)


@admin.register(OwnerVerification)
class OwnerVerificationAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "user", "checked_by", "phone_matched", "email_matched", "id_last4_confirmed",
                    "outcome", "used_at")
    list_filter = ("outcome",)
    list_select_related = ("user", "checked_by")
