from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.utils.translation import gettext_lazy as _
from django.views.i18n import JavaScriptCatalog
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from apps.conversations import simulate_views
from apps.core import entry
from apps.core import views as core_views
from apps.monitoring import prometheus

admin.site.site_header = _("AI Sales Assistant")
admin.site.site_title = _("AI Sales Assistant")
admin.site.index_title = _("Home")

api_v1 = [
    path("", include(f"{app}.api.urls")) for app in settings.PROJECT_APPS if app != "apps.core"
]

urlpatterns = [
    # console (issue 15): entry points, the JavaScript catalogue, password reset by e-mail.
    path("", entry.root, name="root"),
    path("favicon.ico", entry.favicon),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path(
        "admin/password_reset/",
        auth_views.PasswordResetView.as_view(
            email_template_name="registration/console_password_reset_email.txt",
            subject_template_name="registration/console_password_reset_subject.txt",
        ),
        name="admin_password_reset",
    ),
    path(
        "admin/password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("readyz/deep", core_views.readyz_deep, name="readyz-deep"),
    path("metrics", prometheus.metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    # demo (issue 15): "模拟客户消息", a console page outside the admin's model URLs.
    path(
        "admin/simulate-customer/",
        admin.site.admin_view(simulate_views.simulate_customer_view),
        name="simulate_customer",
    ),
    path("admin/", admin.site.urls),
    path("workspace/", include("apps.conversations.workspace.urls")),
    path("api/v1/", entry.ApiRootView.as_view(), name="api-root"),
    path("api/v1/", include(api_v1)),
    # media: signed, expiring URLs the WeChat platforms fetch files from (no session).
    path("media/", include("apps.media.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema"), name="redoc"),
]

# harden: unmatched /api/ paths answer JSON in the one error shape (other paths: the HTML page).
handler404 = "apps.core.api.handlers.not_found"
