from django.urls import path

from compensation import views

app_name = "remedies"

urlpatterns = [
    path("panel/<int:ticket_id>/", views.panel, name="panel"),
    path("panel/<int:ticket_id>/apply/", views.apply, name="apply"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/<int:remedy_id>/approve/", views.decide, {"verdict": "approve"}, name="approve"),
    path("approvals/<int:remedy_id>/reject/", views.decide, {"verdict": "reject"}, name="reject"),
    path("policy/", views.policy, name="policy"),
]
