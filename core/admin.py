from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    """For rows that change only through services (money, ledgers, timelines):
    the admin shows them and never adds, edits or deletes."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
