from django.urls import path

from compensation import views

app_name = "remedies"

urlpatterns = [
    path("panel/<id:ticket_id>/", views.panel, name="panel"),
    path("panel/<id:ticket_id>/apply/", views.apply, name="apply"),
    path("approvals/", views.approvals, name="approvals"),
    path("approvals/<id:remedy_id>/approve/", views.decide, {"verdict": "approve"}, name="approve"),
    path("approvals/<id:remedy_id>/reject/", views.decide, {"verdict": "reject"}, name="reject"),
    path("approvals/payouts/<id:payout_id>/approve/", views.review_payout, {"verdict": "approve"},
         name="payout-approve"),
    path("approvals/payouts/<id:payout_id>/reject/", views.review_payout, {"verdict": "reject"}, name="payout-reject"),
    path("policy/", views.policy, name="policy"),
]
