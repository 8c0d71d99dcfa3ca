"""The console's risk page (``/console/risk/``) and its htmx fragments."""

from django.urls import path

from risk import views

app_name = "risk"

urlpatterns = [
    path("", views.review, name="review"),
    path("accounts/<id:account_id>/", views.account, name="account"),
    path("accounts/<id:account_id>/flag/", views.restrict, {"verb": "flag"}, name="flag"),
    path("accounts/<id:account_id>/freeze/", views.restrict, {"verb": "freeze"}, name="freeze"),
    path("accounts/<id:account_id>/cancel/", views.cancel, name="cancel"),
    path("accounts/<id:account_id>/undo/", views.undo, name="undo"),
    path("accounts/<id:account_id>/unfreeze/", views.unfreeze, name="unfreeze"),
    path("hits/<id:hit_id>/dismiss/", views.dismiss, name="dismiss"),
    path("tickets/<id:ticket_id>/banner/", views.ticket_banner, name="ticket-banner"),
]
