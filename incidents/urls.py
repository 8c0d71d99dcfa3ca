from django.urls import path

from incidents import views

app_name = "incidents"

urlpatterns = [
    path("incidents/", views.incident_list, name="list"),
    path("incidents/<id:incident_id>/", views.incident_detail, name="detail"),
    path("incidents/<id:incident_id>/link/", views.link, name="link"),
    path("incidents/<id:incident_id>/close/", views.close, name="close"),
    path("incidents/<id:incident_id>/jobs/", views.job_preview, name="job-preview"),
    path("jobs/<id:job_id>/run/", views.job_run, name="job-run"),
    path("jobs/<id:job_id>/", views.job_progress, name="job-progress"),
    path("jobs/<id:job_id>/undo/", views.job_undo, name="job-undo"),
    path("coupon-failures/", views.coupon_failures, name="coupon-failures"),
    path("coupon-failures/<id:failure_id>/", views.coupon_failure, name="coupon-failure"),
    path("coupon-failures/<id:failure_id>/buyers/", views.coupon_register, name="coupon-register"),
    path("coupon-failures/<id:failure_id>/compensate/", views.coupon_compensate, name="coupon-compensate"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("dashboard/figures/", views.dashboard_figures, name="dashboard-figures"),
]
