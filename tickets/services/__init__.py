"""Every write that matters in ``tickets``: one public function per use case.

Public entry points own their transaction (``atomic(durable=True)``); the
``_``-prefixed helpers run inside a caller's transaction.
"""

from tickets.services.attachments import upload_attachment
from tickets.services.conversation import fold_search_text
from tickets.services.knowledge import add_playbook, edit_playbook, render_quick_reply
from tickets.services.merchant_side import Upload, respond_as_merchant
from tickets.services.merge import merge_tickets
from tickets.services.messages import mark_read, post_message, rate_ticket
from tickets.services.order_actions import intercept_and_resend
from tickets.services.people import (
    decide_overtime,
    request_overtime,
    send_shift_reminders,
    set_presence,
    shift_status,
)
from tickets.services.routing import dispatch_chats, pick_queue
from tickets.services.tagging import create_saved_view, delete_saved_view, set_ticket_tags
from tickets.services.sla import sweep_missed_resends, sweep_sla
from tickets.services.tickets import open_system_ticket, open_ticket, report_up, transition_ticket

__all__ = [
    "Upload", "add_playbook", "create_saved_view", "decide_overtime", "delete_saved_view", "dispatch_chats", "edit_playbook",
    "fold_search_text",
    "intercept_and_resend", "mark_read", "merge_tickets", "open_system_ticket", "open_ticket", "pick_queue", "post_message",
    "set_ticket_tags",
    "rate_ticket", "render_quick_reply", "report_up", "respond_as_merchant", "request_overtime", "send_shift_reminders", "set_presence",
    "shift_status", "sweep_missed_resends", "sweep_sla", "transition_ticket", "upload_attachment",
]
