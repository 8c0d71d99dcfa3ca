"""The agent console (``/console/``): pages and the htmx fragments they swap in."""

from django.urls import path

from tickets import views

app_name = "console"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("presence/", views.presence, name="presence"),
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
