from django.urls import path, re_path

from apps.conversations import consumers

websocket_urlpatterns = [
    path("ws/chat/", consumers.ChatConsumer.as_asgi()),
    re_path(r"^ws/chat/session/(?P<conversation_id>[^/]+)/$", consumers.SessionConsumer.as_asgi()),
]
