"""Entry points that are not pages of an app: ``/`` (to the console or the login page),
``/favicon.ico`` and the browsable root of ``/api/v1/``."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponseRedirect
from django.templatetags.static import static
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView


def root(request):
    """A signed-in member goes to the console's home page, anyone else to the login page."""
    if request.user.is_authenticated:
        return HttpResponseRedirect(reverse("admin:index"))
    return HttpResponseRedirect(reverse("admin:login") + "?next=" + reverse("admin:index"))


def favicon(request):
    return HttpResponseRedirect(static("favicon.svg"))


def _list_routes(patterns, prefix: str = "") -> list[tuple[str, str]]:
    """(name, path) of every named list route under ``patterns`` (routers name them *-list)."""
    routes = []
    for entry in patterns:
        if isinstance(entry, URLResolver):
            routes += _list_routes(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern) and entry.name and entry.name.endswith("-list"):
            path = prefix + str(entry.pattern)
            if "<" not in path and "(?P" not in path:
                routes.append((entry.name[: -len("-list")], path.lstrip("^").rstrip("$")))
    return routes


class ApiRootView(APIView):
    """The API's entry: every collection, by name, with its URL; docs and schema links."""

    permission_classes = [AllowAny]
    authentication_classes = []

    @extend_schema(exclude=True)
    def get(self, request):
        resolver = get_resolver()
        api = next(
            (
                entry
                for entry in resolver.url_patterns
                if isinstance(entry, URLResolver) and str(entry.pattern) == "api/v1/"
            ),
            None,
        )
        routes = sorted(set(_list_routes(api.url_patterns))) if api else []
        data = {
            "docs": request.build_absolute_uri(reverse("swagger-ui")),
            "schema": request.build_absolute_uri(reverse("schema")),
            "endpoints": {
                name: request.build_absolute_uri(f"/api/v1/{path}") for name, path in routes
            },
        }
        if settings.DEBUG:
            data["redoc"] = request.build_absolute_uri(reverse("redoc"))
        return Response(data)
