from core.errors import AlreadyDecided, Conflict, DomainError, InvalidInput, NotFound, PermissionDenied


class IllegalTransition(DomainError):
    code = "illegal_transition"
    default_detail = "This transition is not allowed from the ticket's current state."


class UnknownTransition(NotFound):
    code = "unknown_transition"
    default_detail = "No such transition."


class TransitionRefused(DomainError):
    """The state allows it, a condition does not (window passed, no merchant…)."""

    code = "transition_refused"


class TransitionForbidden(PermissionDenied):
    code = "transition_forbidden"


class TicketNotFound(NotFound):
    default_detail = "Ticket not found."


class UnknownCategory(InvalidInput):
    code = "unknown_category"


class OrderNotFound(InvalidInput):
    code = "unknown_order"
    default_detail = "No such order for this buyer."


class AlreadyRated(DomainError):
    code = "already_rated"
    default_detail = "This ticket has already been rated."


class NotResolved(DomainError):
    code = "not_resolved"
    default_detail = "A ticket can be rated only once it is resolved."


class TicketClosed(DomainError):
    code = "ticket_closed"
    default_detail = "The ticket is closed; open a new one."


class AssigneeInvalid(InvalidInput):
    code = "assignee_invalid"
    default_detail = "The assignee must be an active agent."


class ShiftLimitReached(DomainError):
    """An agent past the shift (and any overtime granted) takes a ticket by
    hand: the console warns and asks to confirm."""

    code = "shift_limit_reached"
    default_detail = "Your shift for today is reached; confirm to take this ticket anyway, or ask for overtime."


class OvertimePending(Conflict):
    code = "overtime_pending"
    default_detail = "You already have an overtime request waiting for a decision today."


class OvertimeDecided(AlreadyDecided):
    default_detail = "This overtime request has already been decided."


__all__ = [
    "AlreadyRated", "AssigneeInvalid", "Conflict", "DomainError", "IllegalTransition", "InvalidInput",
    "NotFound", "NotResolved", "OrderNotFound", "OvertimeDecided", "OvertimePending", "PermissionDenied", "ShiftLimitReached",
    "TicketClosed", "TicketNotFound", "TransitionForbidden", "TransitionRefused", "UnknownCategory", "UnknownTransition",
]


class HeldByOther(Conflict):
    """The console asks before an agent replies on a ticket another agent holds."""

    code = "held_by_other"
    default_detail = "Another agent holds this ticket; confirm to reply anyway."


class BelowTicketTier(PermissionDenied):
    """Tiers are roles: only someone at or above a ticket's tier resolves or
    closes it; below it, the way is to report it up."""

    code = "below_ticket_tier"
    default_detail = "This ticket is above your tier: report it up to its owner instead."


class NoteRequired(InvalidInput):
    code = "note_required"
    default_detail = "Reporting up needs a note for the next tier."


class MergeIntoSelf(Conflict):
    code = "merge_into_self"
    default_detail = "A ticket cannot be merged into itself."


class MergeTargetClosed(Conflict):
    code = "merge_target_closed"
    default_detail = "The target ticket is no longer open (resolved, closed or merged itself)."


class MergeBuyerMismatch(Conflict):
    code = "merge_buyer_mismatch"
    default_detail = "Only tickets of the same buyer can be merged."


# --- pictures in chat (issue #13 item 3) -------------------------------------------


class FileRequired(InvalidInput):
    code = "file_required"
    default_detail = "Send the file as the multipart field `file`."


class UnsupportedFileType(DomainError):
    """Judged by the file's content, never by its name or declared type."""

    code = "unsupported_file_type"
    default_detail = "Only JPEG, PNG, WebP or GIF images and PDF documents can be attached."


class FileTooLarge(DomainError):
    code = "file_too_large"
    default_detail = "The file is too large."


class ImageUnreadable(DomainError):
    code = "image_unreadable"
    default_detail = "The image is damaged or cannot be read."


class ImageTooLarge(DomainError):
    """More pixels than ``ATTACHMENT_MAX_PIXELS``: refused before decoding (a decompression bomb)."""

    code = "image_too_large"
    default_detail = "The image has too many pixels."


class TooManyAttachments(DomainError):
    code = "too_many_attachments"
    default_detail = "Too many attachments on one message."


class AttachmentUnavailable(DomainError):
    """An id a message may not claim: unknown, of another ticket, uploaded by
    someone else, or already on a message. Nothing is written."""

    code = "attachment_unavailable"
    default_detail = "One of the attachments cannot be sent with this message (upload it again)."


class InvalidTag(InvalidInput):
    code = "invalid_tag"
    default_detail = "A tag is 1–32 letters, digits, '-', '_', '.' or ':'."


class TooManyTags(DomainError):
    code = "too_many_tags"
    default_detail = "A ticket carries at most 10 tags."


class InvalidViewFilters(InvalidInput):
    code = "invalid_view_filters"
    default_detail = "The view's filters are not understood."


class ViewNameTaken(Conflict):
    code = "view_name_taken"
    default_detail = "You already have a view of that name."


class TooManyViews(DomainError):
    code = "too_many_views"
    default_detail = "You have as many saved views as one agent may keep; delete one first."
