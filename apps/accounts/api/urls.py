from django.urls import path
from rest_framework.routers import SimpleRouter

from apps.accounts.api import views
from apps.accounts.api.token_views import FamilyTokenRefreshView

router = SimpleRouter()
router.register("audit-events", views.AuditEventViewSet, basename="audit-event")

urlpatterns = [
    path("auth/register/", views.RegisterView.as_view(), name="auth-register"),
    path("auth/login/", views.LoginView.as_view(), name="auth-login"),
    path("auth/refresh/", FamilyTokenRefreshView.as_view(), name="auth-refresh"),
    path("auth/logout/", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/me/", views.MeView.as_view(), name="auth-me"),
    path("auth/password/", views.PasswordChangeView.as_view(), name="auth-password"),
    *router.urls,
]
