"""The merchant portal's ticket pages, mounted at ``/merchant/tickets/``
(the console's routes are ``tickets.urls``)."""

from django.urls import path

from tickets import portal_views

app_name = "portal_tickets"

urlpatterns = [
    path("", portal_views.ticket_list, name="list"),
    path("summary/", portal_views.ticket_summary, name="summary"),
    path("<id:ticket_id>/", portal_views.ticket_detail, name="detail"),
    path("<id:ticket_id>/messages/", portal_views.new_messages, name="messages"),
    path("<id:ticket_id>/reply/", portal_views.reply, name="reply"),
    path("<id:ticket_id>/respond/", portal_views.respond, name="respond"),
]
