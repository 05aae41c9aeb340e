"""The seed's monitoring endpoints under ``/api/v1/monitoring/`` (organisation-scoped)."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.db.models import Count, Max
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.utils import extend_schema
from rest_framework import mixins
from rest_framework.decorators import action
from rest_framework.response import Response

from apps.core.api.pagination import CursorPagination
from apps.core.api.views import OrgScopedAPIView, OrgScopedGenericViewSet
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.monitoring import alerting, checks, metrics
from apps.monitoring.api import monitoring_serializers as ms
from apps.monitoring.models import Alert
from apps.orgs.models import Role


class AlertPagination(CursorPagination):
    ordering = ("-last_seen_at", "-id")


class OverviewView(OrgScopedAPIView):
    read_role = Role.VIEWER

    @extend_schema(responses=ms.MonitoringOverviewSerializer, operation_id="monitoring_overview")
    def get(self, request):
        return Response(ms.MonitoringOverviewSerializer(metrics.overview(org=request.org)).data)


class MetricsView(OrgScopedAPIView):
    read_role = Role.VIEWER

    @extend_schema(
        parameters=[ms.MetricsQuerySerializer],
        responses=ms.MonitoringMetricsResponseSerializer,
        operation_id="monitoring_metrics",
    )
    def get(self, request):
        query = ms.MetricsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = metrics.metrics_list(
            org=request.org,
            window=query.validated_data["window"],
            service=query.validated_data.get("service"),
            target=query.validated_data.get("target", ""),
        )
        return Response(
            ms.MonitoringMetricsResponseSerializer(
                {"data": data, "window": query.validated_data["window"]}
            ).data
        )


class TrendsView(OrgScopedAPIView):
    read_role = Role.VIEWER

    @extend_schema(
        parameters=[ms.TrendsQuerySerializer],
        responses=ms.MonitoringTrendsSerializer,
        operation_id="monitoring_metrics_trends",
    )
    def get(self, request, service: str):
        if service not in metrics.ALL_SERVICES:
            raise NotFoundError(_("Unknown service."))
        query = ms.TrendsQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = metrics.service_trends(
            org=request.org,
            service=service,
            hours=query.validated_data["hours"],
            points=query.validated_data["points"],
            target=query.validated_data.get("target", ""),
        )
        return Response(ms.MonitoringTrendsSerializer(data).data)


class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedGenericViewSet):
    """Alerts of the organisation (filters: service, severity, type, resolved)."""

    queryset = Alert.objects.select_related("resolved_by")
    serializer_class = ms.MonitoringAlertSerializer
    pagination_class = AlertPagination
    filter_backends: list = []
    read_role = Role.VIEWER
    write_role = Role.MANAGER

    def scope_queryset(self, queryset):
        if self.action != "list":
            return queryset
        query = ms.AlertListQuerySerializer(data=self.request.query_params)
        query.is_valid(raise_exception=True)
        params = query.validated_data
        if params.get("service"):
            queryset = queryset.filter(service=params["service"])
        if params.get("severity"):
            queryset = queryset.filter(severity=params["severity"])
        if params.get("type"):
            queryset = queryset.filter(type=params["type"])
        if params.get("resolved") is not None:
            queryset = queryset.filter(resolved_at__isnull=not params["resolved"])
        return queryset

    @extend_schema(parameters=[ms.AlertListQuerySerializer])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(responses=ms.AlertSummarySerializer)
    @action(detail=False, methods=["get"])
    def summary(self, request):
        alerts = Alert.objects.filter(org=request.org)
        open_alerts = alerts.filter(resolved_at__isnull=True)

        def counts(field):
            return {
                row[field]: row["n"]
                for row in open_alerts.values(field).annotate(n=Count("id")).order_by(field)
            }

        data = {
            "total_open": open_alerts.count(),
            "by_severity": {s: 0 for s in Alert.Severity.values} | counts("severity"),
            "by_type": {t: 0 for t in Alert.Type.values} | counts("type"),
            "by_service": counts("service"),
            "resolved_last_24h": alerts.filter(
                resolved_at__gte=timezone.now() - dt.timedelta(hours=24)
            ).count(),
            "last_alert_at": alerts.aggregate(v=Max("last_seen_at"))["v"],
        }
        return Response(ms.AlertSummarySerializer(data).data)

    @extend_schema(request=ms.AlertResolveSerializer, responses=ms.MonitoringAlertSerializer)
    @action(detail=True, methods=["post"])
    def resolve(self, request, pk=None):
        body = ms.AlertResolveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            alert_id = int(pk)
        except (TypeError, ValueError):
            raise NotFoundError(_("Alert not found.")) from None
        alert = alerting.alert_resolve(
            org=request.org, alert_id=alert_id, user=request.user, note=body.validated_data["note"]
        )
        return Response(ms.MonitoringAlertSerializer(alert).data)


def _config_data(org) -> dict:
    config = alerting.config_get(org=org)
    rules = alerting.rules_effective(org=org)
    data = ms.MonitoringConfigSerializer(config).data
    data["rules"] = ms.AlertRuleSerializer(
        sorted(rules.values(), key=lambda r: (r.service, r.metric)), many=True
    ).data
    return data


class ConfigView(OrgScopedAPIView):
    read_role = Role.MANAGER
    write_role = Role.ADMIN

    @extend_schema(responses=ms.MonitoringConfigSerializer, operation_id="monitoring_config_get")
    def get(self, request):
        return Response(_config_data(request.org))

    @extend_schema(
        request=ms.MonitoringConfigSerializer,
        responses=ms.MonitoringConfigSerializer,
        operation_id="monitoring_config_update",
    )
    def put(self, request):
        config = alerting.config_get(org=request.org)
        serializer = ms.MonitoringConfigSerializer(config, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        rules = fields.pop("rules", [])
        keys = [(r["service"], r["metric"]) for r in rules]
        if len(keys) != len(set(keys)):
            raise ApplicationError(_("Each service and metric may appear once."))
        with transaction.atomic():
            if fields:
                alerting.config_update(org=request.org, **fields)
            for rule in rules:
                alerting.rule_upsert(org=request.org, **{"enabled": True, **rule})
        return Response(_config_data(request.org))


def _status_data(org) -> dict:
    config = alerting.config_get(org=org)
    tick = checks.beat_tick_get()
    pong, _latency = checks.worker_pong_get()

    def when(ts):
        return None if ts is None else dt.datetime.fromtimestamp(ts, tz=dt.UTC)

    return {
        "enabled": config.enabled,
        "interval_seconds": config.interval_seconds,
        "last_run_at": config.last_run_at,
        "beat_last_tick": when(tick),
        "worker_last_ping": when(pong),
    }


class StatusView(OrgScopedAPIView):
    read_role = Role.VIEWER

    @extend_schema(responses=ms.MonitoringStatusSerializer, operation_id="monitoring_status")
    def get(self, request):
        return Response(ms.MonitoringStatusSerializer(_status_data(request.org)).data)


class StartView(OrgScopedAPIView):
    write_role = Role.ADMIN

    @extend_schema(
        request=None, responses=ms.MonitoringStatusSerializer, operation_id="monitoring_start"
    )
    def post(self, request):
        alerting.monitoring_set_enabled(org=request.org, enabled=True)
        return Response(ms.MonitoringStatusSerializer(_status_data(request.org)).data)


class StopView(OrgScopedAPIView):
    write_role = Role.ADMIN

    @extend_schema(
        request=None, responses=ms.MonitoringStatusSerializer, operation_id="monitoring_stop"
    )
    def post(self, request):
        alerting.monitoring_set_enabled(org=request.org, enabled=False)
        return Response(ms.MonitoringStatusSerializer(_status_data(request.org)).data)
