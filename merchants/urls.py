"""The merchant portal (``/merchant/``): the money pages. The ticket pages are
``tickets.portal_urls``, mounted at ``/merchant/tickets/``."""

from django.urls import path

from merchants import views

app_name = "portal"

urlpatterns = [
    path("", views.overview, name="overview"),
    path("tasks/", views.tasks, name="tasks"),
    path("tasks/<id:task_id>/fulfil/", views.fulfil_task, name="fulfil-task"),
    path("payouts/", views.payouts, name="payouts"),
    path("credit/", views.credit, name="credit"),
]
