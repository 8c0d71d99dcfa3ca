"""The agent console (``/console/``): pages and the htmx fragments they swap in."""

from django.urls import path

from tickets import views, views_work

app_name = "console"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("presence/", views.presence, name="presence"),
    path("agent-bar/", views_work.agent_bar, name="agent-bar"),
    path("overtime/", views_work.overtime_ask, name="overtime"),
    path("overtime/requests/", views_work.overtime_requests, name="overtime-requests"),
    path("overtime/<id:request_id>/<slug:decision>/", views_work.overtime_decide, name="overtime-decide"),
    path("calls/new/", views_work.log_call, name="log-call"),
    path("calls/callers/", views_work.callers, name="callers"),
    path("playbooks/", views_work.playbooks, name="playbooks"),
    path("playbooks/<id:playbook_id>/", views_work.playbook_edit, name="playbook-edit"),
    path("chats/tabs/", views.chat_tabs, name="chat-tabs"),
    path("tickets/<id:ticket_id>/", views.ticket, name="ticket"),
    path("tickets/<id:ticket_id>/state/", views.ticket_state, name="ticket-state"),
    path("tickets/<id:ticket_id>/read/", views.mark_read, name="read"),
    path("tickets/<id:ticket_id>/messages/", views.new_messages, name="messages"),
    path("tickets/<id:ticket_id>/reply/", views.reply, name="reply"),
    path("tickets/<id:ticket_id>/order-change/", views.change_order, name="order-change"),
    path("tickets/<id:ticket_id>/intercept-resend/", views.intercept_resend, name="intercept-resend"),
    path("tickets/<id:ticket_id>/transitions/<slug:name>/", views.transition, name="transition"),
    path("tickets/<id:ticket_id>/report-up/", views.report_up, name="report-up"),
    path("tickets/<id:ticket_id>/merge/", views.merge, name="merge"),
    path("tickets/<id:ticket_id>/tags/", views.set_tags, name="tags"),
    path("views/", views.saved_views, name="views"),
    path("views/<id:view_id>/delete/", views.delete_view, name="view-delete"),
]
