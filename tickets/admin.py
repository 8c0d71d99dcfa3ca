from django.contrib import admin

from tickets.models import (
    AgentProfile,
    AgentSkill,
    Attachment,
    Evidence,
    Message,
    OvertimeRequest,
    PhoneCall,
    Playbook,
    Queue,
    QuickReply,
    Rating,
    ReadMark,
    RoutingRule,
    SavedView,
    SearchFold,
    SlaBreach,
    Ticket,
    TicketEvent,
    TicketTag,
    WorkSession,
)


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class TicketEventInline(ReadOnlyInline):
    model = TicketEvent
    fields = ("created_at", "kind", "actor", "data")
    readonly_fields = fields


class MessageInline(ReadOnlyInline):
    model = Message
    fields = ("seq", "author_role", "author", "internal", "body", "created_at")
    readonly_fields = fields


@admin.register(Ticket)
class TicketAdmin(admin.ModelAdmin):
    """State is read-only here: it changes only through ``transition_ticket``."""

    list_display = ("id", "subject", "category", "status", "grade", "tier", "queue", "assignee", "due_at", "created_at")
    list_filter = ("status", "grade", "tier", "category", "channel", "queue")
    search_fields = ("subject", "order__order_no")
    raw_id_fields = ("buyer", "merchant", "order", "assignee", "created_by")
    list_select_related = ("queue", "assignee")
    readonly_fields = (
        "status", "tier", "due_at", "sla_paused_at", "sla_remaining_s", "breached_at", "first_response_at",
        "resolved_at", "closed_at", "last_seq", "last_message_at", "created_at", "updated_at", "merged_into",
    )
    inlines = [MessageInline, TicketEventInline]


@admin.register(TicketEvent)
class TicketEventAdmin(admin.ModelAdmin):
    list_display = ("ticket", "kind", "actor", "created_at")
    list_filter = ("kind",)
    raw_id_fields = ("ticket", "actor")

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # the timeline is append-only

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("ticket", "seq", "author_role", "author", "internal", "created_at")
    list_filter = ("author_role", "internal")
    raw_id_fields = ("ticket", "author")
    readonly_fields = ("ticket", "seq", "created_at")


@admin.register(Queue)
class QueueAdmin(admin.ModelAdmin):
    list_display = ("code", "name", "description")


@admin.register(RoutingRule)
class RoutingRuleAdmin(admin.ModelAdmin):
    list_display = ("priority", "category", "party", "grade", "language", "queue", "active")
    list_editable = ("active",)
    list_filter = ("queue", "active")


@admin.register(QuickReply)
class QuickReplyAdmin(admin.ModelAdmin):
    list_display = ("shortcut", "title", "category", "language", "active")
    list_filter = ("category", "language", "active")
    search_fields = ("shortcut", "title", "body")


@admin.register(Playbook)
class PlaybookAdmin(admin.ModelAdmin):
    list_display = ("title", "category", "created_by", "updated_at")
    list_filter = ("category",)
    search_fields = ("title", "body")
    raw_id_fields = ("created_by",)


@admin.register(ReadMark)
class ReadMarkAdmin(admin.ModelAdmin):
    list_display = ("ticket", "user", "seq", "updated_at")
    raw_id_fields = ("ticket", "user")


@admin.register(Rating)
class RatingAdmin(admin.ModelAdmin):
    list_display = ("ticket", "score", "buyer", "created_at")
    raw_id_fields = ("ticket", "buyer")


class AgentSkillInline(admin.TabularInline):
    model = AgentSkill
    extra = 0


@admin.register(AgentProfile)
class AgentProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "presence", "capacity", "languages", "last_assigned_at")
    list_filter = ("presence",)
    raw_id_fields = ("user",)
    inlines = [AgentSkillInline]


@admin.register(WorkSession)
class WorkSessionAdmin(admin.ModelAdmin):
    list_display = ("agent", "started_at", "ended_at")
    raw_id_fields = ("agent",)


@admin.register(OvertimeRequest)
class OvertimeRequestAdmin(admin.ModelAdmin):
    list_display = ("agent", "work_date", "minutes", "status", "decided_by", "decided_at")
    list_filter = ("status",)
    raw_id_fields = ("agent", "decided_by")


@admin.register(SlaBreach)
class SlaBreachAdmin(admin.ModelAdmin):
    list_display = ("ticket", "grade", "due_at", "tier_before", "tier_after", "detected_at")
    list_filter = ("grade",)
    raw_id_fields = ("ticket",)


@admin.register(AgentSkill)
class AgentSkillAdmin(admin.ModelAdmin):
    list_display = ("profile", "category")
    list_filter = ("category",)
    list_select_related = ("profile__user",)


@admin.register(Evidence)
class EvidenceAdmin(admin.ModelAdmin):
    list_display = ("ticket", "uploaded_by", "content_type", "size", "created_at")
    raw_id_fields = ("ticket", "uploaded_by")


@admin.register(Attachment)
class AttachmentAdmin(admin.ModelAdmin):
    list_display = ("ticket", "message", "uploaded_by", "content_type", "size_bytes", "created_at")
    list_filter = ("content_type",)
    raw_id_fields = ("ticket", "message", "uploaded_by")


@admin.register(PhoneCall)
class PhoneCallAdmin(admin.ModelAdmin):
    list_display = ("ticket", "agent", "direction", "caller_phone", "started_at", "duration_s")
    list_filter = ("direction",)
    raw_id_fields = ("ticket", "agent", "message")


@admin.register(TicketTag)
class TicketTagAdmin(admin.ModelAdmin):
    list_display = ("ticket", "name")
    search_fields = ("name",)
    raw_id_fields = ("ticket",)


@admin.register(SavedView)
class SavedViewAdmin(admin.ModelAdmin):
    list_display = ("owner", "name")
    raw_id_fields = ("owner",)


@admin.register(SearchFold)
class SearchFoldAdmin(admin.ModelAdmin):
    """Where the periodic search fold has got to: to look at, not to set."""

    list_display = ("through",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
