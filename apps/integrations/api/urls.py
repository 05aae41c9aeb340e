from django.conf import settings
from django.urls import path, re_path
from django.views.decorators.csrf import csrf_exempt
from rest_framework.routers import SimpleRouter

from apps.integrations.api import restart_views, views, webhook_views
from apps.integrations.selectors import SERVICE_SPECS

SERVICE_KEYS = "|".join(SERVICE_SPECS)

router = SimpleRouter()
router.register("integrations/connections", views.PlatformConnectionViewSet, basename="connection")
router.register("integrations/ai-apps", views.AIAppViewSet, basename="ai-app")
router.register(
    "integrations/fastgpt/workflows", views.FastGPTWorkflowViewSet, basename="fastgpt-workflow"
)
router.register("integrations/calls", views.IntegrationCallViewSet, basename="integration-call")

urlpatterns = [
    path("integrations/overview/", views.OverviewView.as_view(), name="integrations-overview"),
    re_path(
        rf"^integrations/(?P<service_key>{SERVICE_KEYS})/health/$",
        views.ServiceHealthView.as_view(),
        name="service-health",
    ),
    re_path(
        rf"^integrations/(?P<service_key>{SERVICE_KEYS})/stats/$",
        views.ServiceStatsView.as_view(),
        name="service-stats",
    ),
    path("integrations/services/sync/", views.ServicesSyncView.as_view(), name="integrations-sync"),
    path(
        "integrations/services/restart",
        restart_views.ServicesRestartView.as_view(),
        name="integrations-restart",
    ),
    # The platforms' webhooks (core loop; apps/integrations/api/webhook_views.py).
    path(
        "integrations/gewe/webhook/<str:secret>/",
        webhook_views.GeWeWebhookView.as_view(),
        name="gewe-webhook",
    ),
    path(
        "integrations/ecloud/callback/<str:secret>/",
        webhook_views.ECloudCallbackView.as_view(),
        name="ecloud-callback",
    ),
    *router.urls,
]

if settings.BENCH_BARE_ENDPOINT:  # benchmarks only: the baseline of bench/ingest
    urlpatterns.append(
        path(
            "integrations/bench/bare/",
            csrf_exempt(webhook_views.bench_bare_view),
            name="bench-bare",
        )
    )
