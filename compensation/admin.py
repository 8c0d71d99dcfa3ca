from django.contrib import admin

from compensation.models import (
    AgentQuota,
    BlacklistEntry,
    BreakerReset,
    BudgetDay,
    BuyerCounter,
    Coupon,
    IdempotencyRecord,
    LedgerEntry,
    LedgerHead,
    Policy,
    PolicyChange,
    Remedy,
    RemedyEvent,
)
from core.admin import ReadOnlyAdmin


class RemedyEventInline(admin.TabularInline):
    model = RemedyEvent
    extra = 0
    can_delete = False
    readonly_fields = ("kind", "actor", "data", "created_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Remedy)
class RemedyAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "status", "amount_fen", "with_coupon", "ticket", "requested_by", "created_at")
    list_filter = ("status", "kind", "self_service")
    list_select_related = ("ticket", "requested_by")
    inlines = [RemedyEventInline]


@admin.register(Policy)
class PolicyAdmin(ReadOnlyAdmin):
    list_display = ("value_cap_fen", "coupon_fen", "agent_monthly_quota", "buyer_daily_cap", "daily_budget_fen", "updated_at")


for model, columns in (
    (PolicyChange, ("created_at", "changed_by", "changes", "reason")),
    (BudgetDay, ("date", "budget_fen", "spent_fen", "breaker_open")),
    (BreakerReset, ("created_at", "budget_day", "reset_by", "reason")),
    (AgentQuota, ("agent", "period", "used")),
    (BuyerCounter, ("buyer", "date", "count")),
    (Coupon, ("code", "buyer", "value_fen", "expires_at")),
    (IdempotencyRecord, ("scope", "key", "status_code", "created_at")),
    (LedgerEntry, ("id", "remedy", "account", "amount_fen", "hash")),
    (LedgerHead, ("chain", "entries", "last_hash")),
    (RemedyEvent, ("remedy", "kind", "actor", "created_at")),
):
    admin.site.register(model, type(f"{model.__name__}Admin", (ReadOnlyAdmin,), {"list_display": columns}))


@admin.register(BlacklistEntry)
class BlacklistEntryAdmin(admin.ModelAdmin):
    list_display = ("kind", "value", "reason", "source", "expires_at", "added_by")
    list_filter = ("kind", "source")
    search_fields = ("value",)
