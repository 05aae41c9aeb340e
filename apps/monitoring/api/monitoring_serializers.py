"""Serializers of the monitoring endpoints (health, metrics, alerts, configuration)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.core.api.serializers import QuerySerializer
from apps.monitoring.alerting import alert_payload
from apps.monitoring.metrics import ALL_SERVICES, WINDOWS
from apps.monitoring.models import Alert, AlertRule, MonitoringConfig


class MonitoringAlertSerializer(serializers.ModelSerializer):
    """The seed's alert shape."""

    class Meta:
        model = Alert
        fields = ["id"]

    def to_representation(self, instance):
        return alert_payload(instance)


class AlertListQuerySerializer(QuerySerializer):
    service = serializers.CharField(required=False, max_length=32)
    severity = serializers.ChoiceField(choices=Alert.Severity.choices, required=False)
    resolved = serializers.BooleanField(required=False, allow_null=True, default=None)
    type = serializers.ChoiceField(choices=Alert.Type.choices, required=False)


class AlertResolveSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, max_length=200, default="")


class MetricsQuerySerializer(QuerySerializer):
    service = serializers.ChoiceField(choices=[(s, s) for s in ALL_SERVICES], required=False)
    target = serializers.RegexField(r"^[a-z_]+:\d+$", required=False, max_length=64)
    window = serializers.ChoiceField(choices=[(w, w) for w in WINDOWS], default="1h")


class TrendsQuerySerializer(QuerySerializer):
    hours = serializers.IntegerField(min_value=1, max_value=168, default=24)
    points = serializers.IntegerField(min_value=2, max_value=288, default=48)
    target = serializers.RegexField(r"^[a-z_]+:\d+$", required=False, max_length=64)


class AlertRuleSerializer(serializers.ModelSerializer):
    service = serializers.CharField(max_length=32)

    class Meta:
        model = AlertRule
        fields = ["service", "metric", "warning", "critical", "enabled"]

    def validate_service(self, value):
        if value != AlertRule.ALL_SERVICES and value not in ALL_SERVICES:
            raise serializers.ValidationError(_("Unknown service."))
        return value


class MonitoringConfigSerializer(serializers.ModelSerializer):
    rules = AlertRuleSerializer(many=True, required=False)

    class Meta:
        model = MonitoringConfig
        fields = [
            "enabled",
            "interval_seconds",
            "ai_live_checks",
            "ai_check_interval_seconds",
            "sample_retention_days",
            "alert_retention_days",
            "dedupe_window_seconds",
            "auto_resolve_seconds",
            "evaluation_window_seconds",
            "min_requests",
            "anomaly_z_threshold",
            "anomaly_min_hours",
            "notify_email",
            "last_run_at",
            "rules",
        ]
        read_only_fields = ["last_run_at"]
        extra_kwargs = {
            "interval_seconds": {"min_value": 10, "max_value": 3600},
            "sample_retention_days": {"min_value": 1, "max_value": 90},
            "alert_retention_days": {"min_value": 1, "max_value": 365},
            "evaluation_window_seconds": {"min_value": 60, "max_value": 86400},
            "anomaly_z_threshold": {"min_value": 0.5, "max_value": 100},
        }


class MonitoringStatusSerializer(serializers.Serializer):
    enabled = serializers.BooleanField()
    interval_seconds = serializers.IntegerField()
    last_run_at = serializers.DateTimeField(allow_null=True)
    beat_last_tick = serializers.DateTimeField(allow_null=True)
    worker_last_ping = serializers.DateTimeField(allow_null=True)


class MonitoringServiceStatusSerializer(serializers.Serializer):
    service_name = serializers.CharField()
    status = serializers.CharField()
    last_check = serializers.DateTimeField(allow_null=True)
    response_time = serializers.FloatField(allow_null=True)
    success_rate = serializers.FloatField(allow_null=True)
    targets = serializers.IntegerField()
    failing_targets = serializers.IntegerField()


class MonitoringOverviewSerializer(serializers.Serializer):
    total_services = serializers.IntegerField()
    healthy_services = serializers.IntegerField()
    degraded_services = serializers.IntegerField()
    down_services = serializers.IntegerField()
    active_alerts = serializers.IntegerField()
    critical_alerts = serializers.IntegerField()
    services = serializers.DictField(child=MonitoringServiceStatusSerializer())
    monitoring_enabled = serializers.BooleanField()
    last_update = serializers.DateTimeField(allow_null=True)


class MonitoringMetricsSummarySerializer(serializers.Serializer):
    request_count = serializers.IntegerField()
    success_count = serializers.IntegerField()
    error_count = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True)
    error_rate = serializers.FloatField(allow_null=True)
    avg_response_time = serializers.FloatField(allow_null=True)
    p95_response_time = serializers.FloatField(allow_null=True)


class MonitoringTargetMetricsSerializer(MonitoringMetricsSummarySerializer):
    target = serializers.CharField()
    target_name = serializers.CharField()


class MonitoringServiceMetricsSerializer(MonitoringMetricsSummarySerializer):
    service = serializers.CharField()
    service_name = serializers.CharField()
    window = serializers.CharField()
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=18, decimal_places=6, coerce_to_string=True)
    targets = MonitoringTargetMetricsSerializer(many=True)


class MonitoringMetricsResponseSerializer(serializers.Serializer):
    data = MonitoringServiceMetricsSerializer(many=True)
    window = serializers.CharField()


class MonitoringTrendSerializer(serializers.Serializer):
    current = serializers.FloatField(allow_null=True)
    average = serializers.FloatField(allow_null=True)
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)
    trend = serializers.ChoiceField(choices=["increasing", "decreasing", "stable"])


class TrendPointSerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    requests = serializers.IntegerField()
    response_time = serializers.FloatField(allow_null=True)
    success_rate = serializers.FloatField(allow_null=True)


class MonitoringTrendsSerializer(serializers.Serializer):
    service = serializers.CharField()
    service_name = serializers.CharField()
    trends = serializers.DictField(child=MonitoringTrendSerializer())
    data_points = serializers.IntegerField()
    time_range = serializers.CharField()
    series = TrendPointSerializer(many=True)


class AlertSummarySerializer(serializers.Serializer):
    total_open = serializers.IntegerField()
    by_severity = serializers.DictField(child=serializers.IntegerField())
    by_type = serializers.DictField(child=serializers.IntegerField())
    by_service = serializers.DictField(child=serializers.IntegerField())
    resolved_last_24h = serializers.IntegerField()
    last_alert_at = serializers.DateTimeField(allow_null=True)
