from django.urls import path
from django.views.i18n import JavaScriptCatalog

from apps.conversations.workspace import views

app_name = "workspace"

urlpatterns = [
    path("", views.index, name="index"),
    path("c/<int:conversation_id>/", views.index, name="conversation"),
    path("ws-token/", views.ws_token, name="ws_token"),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="jsi18n"),
]
