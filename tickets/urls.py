from django.urls import path

from tickets import views

app_name = "console"

urlpatterns = [
    path("", views.queue, name="queue"),
]
