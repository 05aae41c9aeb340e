from django.conf import settings
from django.contrib import admin
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.core import views as core_views
from apps.monitoring import prometheus

admin.site.site_header = _("AI Sales Assistant")
admin.site.site_title = _("AI Sales Assistant")
admin.site.index_title = _("Administration")

api_v1 = [
    path("", include(f"{app}.api.urls")) for app in settings.PROJECT_APPS if app != "apps.core"
]

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("readyz/deep", core_views.readyz_deep, name="readyz-deep"),
    path("metrics", prometheus.metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("admin/", admin.site.urls),
    path("workspace/", include("apps.conversations.workspace.urls")),
    path("api/v1/", include(api_v1)),
    # media: signed, expiring URLs the WeChat platforms fetch files from (no session).
    path("media/", include("apps.media.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]
