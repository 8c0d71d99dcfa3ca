from django.urls import path

from tickets import chat_views

app_name = "chat"

urlpatterns = [
    path("", chat_views.home, name="home"),
    path("start/", chat_views.start, name="start"),
    path("<id:ticket_id>/", chat_views.room, name="room"),
    path("<id:ticket_id>/rate/", chat_views.rate, name="rate"),
]
