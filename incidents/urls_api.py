from django.urls import path

from incidents import api

urlpatterns = [
    path("logistics/events/", api.LogisticsEventApi.as_view(), name="logistics-events"),
    path("incidents/", api.IncidentListApi.as_view(), name="incident-list"),
    path("incidents/<id:incident_id>/", api.IncidentDetailApi.as_view(), name="incident-detail"),
    path("incidents/<id:incident_id>/tickets/", api.IncidentTicketsApi.as_view(), name="incident-tickets"),
    path("incidents/<id:incident_id>/close/", api.IncidentCloseApi.as_view(), name="incident-close"),
    path("bulk-jobs/", api.BulkJobListApi.as_view(), name="bulk-job-list"),
    path("bulk-jobs/<id:job_id>/", api.BulkJobDetailApi.as_view(), name="bulk-job-detail"),
    path("bulk-jobs/<id:job_id>/preview/", api.BulkJobPreviewApi.as_view(), name="bulk-job-preview"),
    path("bulk-jobs/<id:job_id>/run/", api.BulkJobRunApi.as_view(), name="bulk-job-run"),
    path("bulk-jobs/<id:job_id>/undo/", api.BulkJobUndoApi.as_view(), name="bulk-job-undo"),
    path("coupon-failures/", api.CouponFailureListApi.as_view(), name="coupon-failure-list"),
    path("coupon-failures/<id:failure_id>/", api.CouponFailureDetailApi.as_view(), name="coupon-failure-detail"),
    path("coupon-failures/<id:failure_id>/buyers/", api.CouponFailureBuyersApi.as_view(), name="coupon-failure-buyers"),
    path("coupon-failures/<id:failure_id>/compensate/", api.CouponFailureCompensateApi.as_view(),
         name="coupon-failure-compensate"),
]
