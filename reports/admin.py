from django.contrib import admin

from reports.models import ExportRecord


@admin.register(ExportRecord)
class ExportRecordAdmin(admin.ModelAdmin):
    list_display = ("kind", "user", "started_at", "finished_at", "row_count")
    list_filter = ("kind",)
    readonly_fields = ("user", "kind", "filters", "client_ip", "started_at", "finished_at", "row_count")

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
