from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.monitoring.api import monitoring_views, views

router = SimpleRouter()
router.register("notifications", views.NotificationViewSet, basename="notification")
router.register(
    "notification-webhooks", views.NotificationWebhookViewSet, basename="notification-webhook"
)
# Health checks, metrics and alerts (the monitoring work).
router.register("monitoring/alerts", monitoring_views.AlertViewSet, basename="monitoring-alert")

urlpatterns = [
    path(
        "monitoring/overview/", monitoring_views.OverviewView.as_view(), name="monitoring-overview"
    ),
    path("monitoring/metrics/", monitoring_views.MetricsView.as_view(), name="monitoring-metrics"),
    path(
        "monitoring/metrics/<str:service>/trends/",
        monitoring_views.TrendsView.as_view(),
        name="monitoring-trends",
    ),
    path("monitoring/config/", monitoring_views.ConfigView.as_view(), name="monitoring-config"),
    path("monitoring/start/", monitoring_views.StartView.as_view(), name="monitoring-start"),
    path("monitoring/stop/", monitoring_views.StopView.as_view(), name="monitoring-stop"),
    path("monitoring/status/", monitoring_views.StatusView.as_view(), name="monitoring-status"),
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
