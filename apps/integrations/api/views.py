"""Integrations API: platform connections, AI apps, health, stats and the call log."""

from __future__ import annotations

import django_filters
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api.filters import IdFilter
from apps.core.api.views import OrgScopedAPIView, OrgScopedGenericViewSet, OrgScopedViewSet
from apps.integrations import selectors, services
from apps.integrations.api.serializers import (
    AIAppSerializer,
    AIAppTestRequestSerializer,
    CheckResultSerializer,
    FastGPTWorkflowSerializer,
    IntegrationCallSerializer,
    OverviewSerializer,
    PlatformConnectionSerializer,
    ServiceHealthSerializer,
    ServiceStatsSerializer,
    StatsQuerySerializer,
)
from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection
from apps.orgs.models import Role

SERVICE_PARAMETER = OpenApiParameter(
    "service_key",
    str,
    OpenApiParameter.PATH,
    enum=list(selectors.SERVICE_SPECS),
    description="gewe, ecloud, openai (incl. DashScope), fastgpt or dify.",
)
HOURS_PARAMETER = OpenApiParameter(
    "hours",
    {"type": "integer", "minimum": 1, "maximum": 24 * 90},
    description="Stats window in hours (default INTEGRATION_STATS_DEFAULT_HOURS).",
)


def _check_payload(result: services.CheckResult) -> dict:
    return CheckResultSerializer(
        {
            "ok": result.ok,
            "latency_ms": result.latency_ms,
            "detail": result.detail,
            "error_class": result.error_class,
            "text": result.text,
            "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens,
        }
    ).data


class _ServiceBackedViewSet(OrgScopedViewSet):
    """CRUD whose writes go through services (``create_service`` / ``update_service`` /
    ``delete_service``, all taking ``org`` and ``actor``)."""

    id_argument: str = "id"

    def create_service(self, **kwargs): ...

    def update_service(self, **kwargs): ...

    def delete_service(self, **kwargs): ...

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        obj = self.create_service(org=request.org, actor=request.user, **serializer.validated_data)
        return Response(self.get_serializer(obj).data, status=status.HTTP_201_CREATED)

    def update(self, request, *args, **kwargs):
        instance = self.get_object()
        serializer = self.get_serializer(
            instance, data=request.data, partial=kwargs.pop("partial", False)
        )
        serializer.is_valid(raise_exception=True)
        obj = self.update_service(
            org=request.org,
            actor=request.user,
            **{self.id_argument: instance.id},
            **serializer.validated_data,
        )
        return Response(self.get_serializer(obj).data)

    def destroy(self, request, *args, **kwargs):
        instance = self.get_object()
        self.delete_service(org=request.org, actor=request.user, **{self.id_argument: instance.id})
        return Response(status=status.HTTP_204_NO_CONTENT)


class PlatformConnectionViewSet(_ServiceBackedViewSet):
    """GeWe / E云管家 connections. Members read; managers and above write and test."""

    queryset = PlatformConnection.objects.all()
    serializer_class = PlatformConnectionSerializer
    write_role = Role.MANAGER
    id_argument = "connection_id"
    filterset_fields = ["provider", "status"]
    search_fields = ["name", "base_url"]
    ordering_fields = ["name", "created_at", "last_checked_at"]

    def create_service(self, **kwargs):
        return services.connection_create(**kwargs)

    def update_service(self, **kwargs):
        return services.connection_update(**kwargs)

    def delete_service(self, **kwargs):
        return services.connection_delete(**kwargs)

    @extend_schema(request=None, responses=CheckResultSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """Call the platform once with the stored credentials; report result and latency."""
        connection = self.get_object()
        result = services.connection_test(org=request.org, connection_id=connection.id)
        return Response(_check_payload(result))

    @extend_schema(request=None, responses=PlatformConnectionSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret")
    def rotate_secret(self, request, pk=None):
        """New webhook secret: the old webhook URL stops working at once."""
        connection = self.get_object()
        connection = services.connection_rotate_secret(
            org=request.org, connection_id=connection.id, actor=request.user
        )
        return Response(self.get_serializer(connection).data)

    @extend_schema(request=None, responses=PlatformConnectionSerializer)
    @action(detail=True, methods=["post"], url_path="set-callback")
    def set_callback(self, request, pk=None):
        """Tell the platform to post events to this connection's webhook URL."""
        connection = self.get_object()
        connection = services.connection_set_callback(org=request.org, connection_id=connection.id)
        return Response(self.get_serializer(connection).data)


class AIAppViewSet(_ServiceBackedViewSet):
    """AI apps (OpenAI-compatible, FastGPT, Dify). Members read; managers and above write."""

    queryset = AIApp.objects.all()
    serializer_class = AIAppSerializer
    write_role = Role.MANAGER
    id_argument = "ai_app_id"
    filterset_fields = ["provider", "purpose", "enabled", "is_default"]
    search_fields = ["name", "model", "app_id"]
    ordering_fields = ["name", "created_at", "last_checked_at"]
    provider: str | None = None

    def scope_queryset(self, queryset):
        if self.provider:
            queryset = queryset.filter(provider=self.provider)
        return queryset

    def create_service(self, **kwargs):
        if self.provider:
            kwargs["provider"] = self.provider
        return services.ai_app_create(**kwargs)

    def update_service(self, **kwargs):
        return services.ai_app_update(**kwargs)

    def delete_service(self, **kwargs):
        return services.ai_app_delete(**kwargs)

    @extend_schema(request=AIAppTestRequestSerializer, responses=CheckResultSerializer)
    @action(detail=True, methods=["post"])
    def test(self, request, pk=None):
        """One real turn with the stored settings; returns text, tokens and latency."""
        ai_app = self.get_object()
        serializer = AIAppTestRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        result = services.ai_app_test(
            org=request.org, ai_app_id=ai_app.id, prompt=serializer.validated_data.get("prompt", "")
        )
        return Response(_check_payload(result))


class FastGPTWorkflowViewSet(AIAppViewSet):
    """The seed's FastGPT workflow registry: AI apps whose provider is FastGPT."""

    serializer_class = FastGPTWorkflowSerializer
    provider = AIApp.Provider.FASTGPT
    http_method_names = ["get", "post", "delete", "head", "options"]


class IntegrationCallFilter(django_filters.FilterSet):
    connection = IdFilter(field_name="connection_id")
    ai_app = IdFilter(field_name="ai_app_id")
    wechat_account_id = IdFilter(field_name="wechat_account_id")

    class Meta:
        model = IntegrationCall
        fields = ["service", "operation", "ok", "connection", "ai_app", "wechat_account_id"]


class IntegrationCallViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedGenericViewSet
):
    """The call log (one row per attempt), newest first."""

    queryset = IntegrationCall.objects.all()
    serializer_class = IntegrationCallSerializer
    filterset_class = IntegrationCallFilter
    ordering_fields = ["at", "latency_ms"]
    ordering = ["-at", "-id"]


def _window(request):
    query = StatsQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return selectors.stats_window(query.validated_data.get("hours"))


class OverviewView(OrgScopedAPIView):
    @extend_schema(parameters=[HOURS_PARAMETER], responses=OverviewSerializer)
    def get(self, request):
        since, until = _window(request)
        data = selectors.integrations_overview(org=request.org, since=since, until=until)
        return Response(OverviewSerializer(data).data)


class ServiceHealthView(OrgScopedAPIView):
    """Last checks of the service's connections or AI apps, plus stats over the window
    (``gewe/health``, ``fastgpt/health`` ...)."""

    @extend_schema(
        parameters=[SERVICE_PARAMETER, HOURS_PARAMETER], responses=ServiceHealthSerializer
    )
    def get(self, request, service_key: str):
        since, until = _window(request)
        data = selectors.service_health(org=request.org, key=service_key, since=since, until=until)
        return Response(ServiceHealthSerializer(data).data)


class ServiceStatsView(OrgScopedAPIView):
    """Call-log aggregates of one service over a window, default 24 hours (``gewe/stats``,
    ``fastgpt/stats`` ...)."""

    @extend_schema(
        parameters=[SERVICE_PARAMETER, HOURS_PARAMETER], responses=ServiceStatsSerializer
    )
    def get(self, request, service_key: str):
        since, until = _window(request)
        spec = selectors.SERVICE_SPECS[service_key]
        data = selectors.integration_call_stats(
            org=request.org, services=spec.services, since=since, until=until
        )
        data.update(service_name=spec.name, services=list(spec.services))
        return Response(ServiceStatsSerializer(data).data)


class ServicesSyncView(OrgScopedAPIView):
    """Check every active connection and AI app live now, then answer the overview."""

    write_role = Role.MANAGER

    @extend_schema(request=None, parameters=[HOURS_PARAMETER], responses=OverviewSerializer)
    def post(self, request):
        services.integrations_sync(org=request.org)
        since, until = _window(request)
        data = selectors.integrations_overview(org=request.org, since=since, until=until)
        return Response(OverviewSerializer(data).data)
