from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import accounts.schema  # noqa: F401  the token's security scheme, with the schema's views (not on a cold start)
from accounts import views as accounts_views
from accounts.forms import LoginForm
from accounts.api import LockoutResetApi, LogoutApi, TokenApi
from cs_portal import views as portal_views
from merchants import api as merchants_api
from tickets import api as tickets_api
from tickets import api_calls as tickets_api_calls

api_v1 = [
    path("auth/token/", TokenApi.as_view(), name="auth-token"),
    path("auth/logout/", LogoutApi.as_view(), name="auth-logout"),
    path("auth/lockouts/reset/", LockoutResetApi.as_view(), name="auth-lockouts-reset"),
    path("tickets/", tickets_api.TicketListApi.as_view(), name="ticket-list"),
    path("tickets/<id:ticket_id>/", tickets_api.TicketDetailApi.as_view(), name="ticket-detail"),
    path(
        "tickets/<id:ticket_id>/transitions/<str:name>/",
        tickets_api.TicketTransitionApi.as_view(),
        name="ticket-transition",
    ),
    path("tickets/<id:ticket_id>/report-up/", tickets_api.TicketReportUpApi.as_view(), name="ticket-report-up"),
    path("tickets/<id:ticket_id>/merge/", tickets_api.TicketMergeApi.as_view(), name="ticket-merge"),
    path("tickets/<id:ticket_id>/tags/", tickets_api.TicketTagsApi.as_view(), name="ticket-tags"),
    path("views/", tickets_api.SavedViewListApi.as_view(), name="view-list"),
    path("views/<id:view_id>/", tickets_api.SavedViewDetailApi.as_view(), name="view-detail"),
    path("tickets/<id:ticket_id>/intercept-resend/", tickets_api.TicketInterceptResendApi.as_view(),
         name="ticket-intercept-resend"),
    path("tickets/<id:ticket_id>/events/", tickets_api.TicketEventsApi.as_view(), name="ticket-events"),
    path("tickets/<id:ticket_id>/messages/", tickets_api.TicketMessagesApi.as_view(), name="ticket-messages"),
    path("tickets/<id:ticket_id>/rating/", tickets_api.TicketRatingApi.as_view(), name="ticket-rating"),
    path(
        "tickets/<id:ticket_id>/quick-replies/",
        tickets_api.TicketQuickRepliesApi.as_view(),
        name="ticket-quick-replies",
    ),
    path(
        "tickets/<id:ticket_id>/merchant-response/",
        tickets_api.MerchantResponseApi.as_view(),
        name="ticket-merchant-response",
    ),
    path("evidence/<id:evidence_id>/", tickets_api.EvidenceFileApi.as_view(), name="evidence-file"),
    path("tickets/<id:ticket_id>/attachments/", tickets_api.TicketAttachmentsApi.as_view(), name="ticket-attachments"),
    path("attachments/<id:attachment_id>/", tickets_api.AttachmentFileApi.as_view(), name="attachment-file"),
    path("attachments/<id:attachment_id>/thumbnail/", tickets_api.AttachmentThumbnailApi.as_view(),
         name="attachment-thumbnail"),
    path("playbooks/", tickets_api.PlaybookListApi.as_view(), name="playbook-list"),
    path("playbooks/<id:playbook_id>/", tickets_api.PlaybookDetailApi.as_view(), name="playbook-detail"),
    path("calls/", tickets_api_calls.PhoneCallApi.as_view(), name="call-list"),
    path("callers/", tickets_api_calls.CallerLookupApi.as_view(), name="caller-lookup"),
    path("queues/", tickets_api.QueueListApi.as_view(), name="queue-list"),
    path("agents/me/", tickets_api.AgentMeApi.as_view(), name="agent-me"),
    path("agents/me/presence/", tickets_api.AgentPresenceApi.as_view(), name="agent-presence"),
    path("agents/me/overtime/", tickets_api.OvertimeRequestApi.as_view(), name="agent-overtime"),
    path("overtime/", tickets_api.OvertimeListApi.as_view(), name="overtime-list"),
    path(
        "overtime/<id:request_id>/grant/",
        tickets_api.OvertimeDecisionApi.as_view(grant=True),
        name="overtime-grant",
    ),
    path(
        "overtime/<id:request_id>/deny/",
        tickets_api.OvertimeDecisionApi.as_view(grant=False),
        name="overtime-deny",
    ),
    path("orders/", merchants_api.OrderListApi.as_view(), name="order-list"),
    path("orders/<id:order_id>/", merchants_api.OrderDetailApi.as_view(), name="order-detail"),
    path("orders/<id:order_id>/confirm/", merchants_api.OrderConfirmApi.as_view(), name="order-confirm"),
    path("merchants/<id:merchant_id>/balance/", merchants_api.MerchantBalanceApi.as_view(), name="merchant-balance"),
    path("merchants/<id:merchant_id>/holds/", merchants_api.MerchantHoldsApi.as_view(), name="merchant-holds"),
    path("merchants/<id:merchant_id>/payouts/", merchants_api.MerchantPayoutsApi.as_view(), name="merchant-payouts"),
    path("merchants/<id:merchant_id>/tasks/", merchants_api.MerchantTasksApi.as_view(), name="merchant-tasks"),
    path(
        "merchants/<id:merchant_id>/tasks/<id:task_id>/fulfil/",
        merchants_api.ResendFulfilApi.as_view(),
        name="merchant-task-fulfil",
    ),
    path("merchants/<id:merchant_id>/stock/", merchants_api.MerchantStockApi.as_view(), name="merchant-stock"),
    path("merchants/<id:merchant_id>/credit/", merchants_api.MerchantCreditApi.as_view(), name="merchant-credit"),
    path("merchants/<id:merchant_id>/credit/standing/", merchants_api.MerchantCreditStandingApi.as_view(),
         name="merchant-credit-standing"),
    path("merchants/credit-policy/", merchants_api.CreditPolicyApi.as_view(), name="merchant-credit-policy"),
    path("payouts/awaiting-review/", merchants_api.PayoutReviewListApi.as_view(), name="payouts-awaiting-review"),
    path("payouts/<id:payout_id>/approve/", merchants_api.PayoutApproveApi.as_view(), name="payout-approve"),
    path("payouts/<id:payout_id>/reject/", merchants_api.PayoutRejectApi.as_view(), name="payout-reject"),
    path("orders/<id:order_id>/changes/", merchants_api.OrderChangeApi.as_view(), name="order-changes"),
]

urlpatterns = [
    path("", portal_views.home, name="home"),
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(template_name="accounts/login.html", authentication_form=LoginForm), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/v1/", include(api_v1)),
    path("api/v1/", include("compensation.urls_api")),
    path("api/v1/", include("risk.urls_api")),
    path("api/v1/", include("incidents.urls_api")),
    path("api/v1/", include("reports.urls_api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("chat/", include("tickets.chat_urls")),
    path("console/lockouts/lift/", accounts_views.lift_lockout, name="lockout-lift"),
    path("console/remedies/", include("compensation.urls")),
    path("console/risk/", include("risk.urls")),
    path("console/reports/", include("reports.urls")),
    path("console/", include("incidents.urls")),
    path("console/", include("tickets.urls")),
    path("merchant/tickets/", include("tickets.portal_urls")),
    path("merchant/", include("merchants.urls")),
    path("favicon.ico", RedirectView.as_view(url="/static/favicon.svg", permanent=True)),
]

handler404 = "cs_portal.views.not_found"
handler500 = "cs_portal.views.server_error"
