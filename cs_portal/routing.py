from django.urls import path

from merchants.consumers import MerchantConsumer
from tickets.consumers import ChatConsumer, ConsoleConsumer

websocket_urlpatterns = [
    path("ws/console/", ConsoleConsumer.as_asgi()),
    path("ws/tickets/<id:ticket_id>/chat/", ChatConsumer.as_asgi()),
    path("ws/merchant/", MerchantConsumer.as_asgi()),
]
