from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import ApiToken, LockoutRelease, LoginEvent, User
from core.admin import ReadOnlyAdmin


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = ("username", "display_name", "email", "account_status", "is_staff", "last_login")
    list_filter = ("account_status", "groups", "is_staff", "is_active")
    search_fields = ("username", "display_name", "email", "phone")
    fieldsets = BaseUserAdmin.fieldsets + (
        (_("Workbench"), {"fields": ("display_name", "phone", "language", "account_status")}),
    )


@admin.register(LoginEvent)
class LoginEventAdmin(ReadOnlyAdmin):
    list_display = ("at", "user", "source", "ip", "device")
    list_filter = ("source",)
    list_select_related = ("user",)
    search_fields = ("user__username", "ip", "device")
    date_hierarchy = "at"


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    """Tokens are issued by a login (or ``manage.py issue_api_token``); here
    one is seen and revoked (deleted), never written."""

    list_display = ("prefix", "user", "created_at", "expires_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "prefix")
    readonly_fields = ("user", "prefix", "created_at", "expires_at")
    exclude = ("digest",)

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser


@admin.register(LockoutRelease)
class LockoutReleaseAdmin(ReadOnlyAdmin):
    list_display = ("at", "actor", "username", "ip", "cleared")
    list_select_related = ("actor",)
    search_fields = ("username", "ip", "actor__username")
    date_hierarchy = "at"
