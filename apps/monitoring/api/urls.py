from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.monitoring.api import views

router = SimpleRouter()
router.register("notifications", views.NotificationViewSet, basename="notification")
router.register(
    "notification-webhooks", views.NotificationWebhookViewSet, basename="notification-webhook"
)

urlpatterns = [
    path("websocket/stats/", views.WSStatsView.as_view(), name="ws-stats"),
    path("websocket/connections/", views.WSConnectionsView.as_view(), name="ws-connections"),
    path(
        "websocket/users/<int:user_id>/connections/",
        views.WSUserConnectionsView.as_view(),
        name="ws-user-connections",
    ),
    path("websocket/health/", views.WSHealthView.as_view(), name="ws-health"),
    path("websocket/online-users/", views.WSOnlineUsersView.as_view(), name="ws-online-users"),
    path("websocket/broadcast/", views.WSBroadcastView.as_view(), name="ws-broadcast"),
    path("websocket/users/disconnect/", views.WSDisconnectView.as_view(), name="ws-disconnect"),
    path("websocket/notify/", views.WSNotifyView.as_view(), name="ws-notify"),
    path("websocket/ping/<int:user_id>/", views.WSPingView.as_view(), name="ws-ping"),
    *router.urls,
]
