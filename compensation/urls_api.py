from django.urls import path

from compensation import api

urlpatterns = [
    path("tickets/<id:ticket_id>/remedies/", api.TicketRemediesApi.as_view(), name="ticket-remedies"),
    path("remedies/", api.RemedyListApi.as_view(), name="remedy-list"),
    path("remedies/<id:remedy_id>/approve/", api.RemedyDecisionApi.as_view(approve=True), name="remedy-approve"),
    path("remedies/<id:remedy_id>/reject/", api.RemedyDecisionApi.as_view(approve=False), name="remedy-reject"),
    path("agents/me/quota/", api.QuotaApi.as_view(), name="agent-quota"),
    path("compensation/budget/", api.BudgetApi.as_view(), name="compensation-budget"),
    path("compensation/policy/", api.PolicyApi.as_view(), name="compensation-policy"),
    path("compensation/breaker/reset/", api.BreakerResetApi.as_view(), name="compensation-breaker-reset"),
    path("compensation/blacklist/", api.BlacklistApi.as_view(), name="compensation-blacklist"),
]
