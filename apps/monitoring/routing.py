from django.urls import path

from apps.monitoring import consumers

websocket_urlpatterns = [
    path("ws/admin/monitor/", consumers.MonitorConsumer.as_asgi()),
]
