from django.urls import path

from risk import api

urlpatterns = [
    path("risk/check/", api.RiskCheckApi.as_view(), name="risk-check"),
    path("risk/hits/", api.RiskHitListApi.as_view(), name="risk-hits"),
    path("risk/hits/<id:hit_id>/dismiss/", api.RiskHitDismissApi.as_view(), name="risk-hit-dismiss"),
    path("risk/accounts/<id:account_id>/flag/", api.RiskAccountStatusApi.as_view(verb="flag"), name="risk-flag"),
    path("risk/accounts/<id:account_id>/freeze/", api.RiskAccountStatusApi.as_view(verb="freeze"),
         name="risk-freeze"),
    path("risk/accounts/<id:account_id>/unfreeze/", api.RiskUnfreezeApi.as_view(), name="risk-unfreeze"),
    path("risk/accounts/<id:account_id>/cancel-orders/", api.RiskCancelOrdersApi.as_view(),
         name="risk-cancel-orders"),
    path("risk/accounts/<id:account_id>/restore-orders/", api.RiskRestoreOrdersApi.as_view(),
         name="risk-restore-orders"),
    path("buyers/<id:buyer_id>/profile/", api.BuyerProfileApi.as_view(), name="buyer-profile"),
]
