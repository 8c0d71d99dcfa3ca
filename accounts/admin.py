from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts.models import LoginEvent, User
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
