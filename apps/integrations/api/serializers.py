"""Serializers of the integrations API. Secrets are write-only and shown masked."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.core.api.serializers import QuerySerializer, SecretField
from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection
from apps.orgs.models import Role, role_at_least


def _json_object(value):
    if not isinstance(value, dict):
        raise serializers.ValidationError(_("Must be a JSON object."))
    return value


def _is_admin(request) -> bool:
    membership = getattr(request, "membership", None)
    return membership is not None and role_at_least(membership.role, Role.ADMIN)


class PlatformConnectionSerializer(serializers.ModelSerializer):
    token = SecretField(
        help_text=_("GeWe token / E云管家 Authorization. Write-only; answered masked.")
    )
    password = SecretField(help_text=_("E云管家 developer password. Write-only; answered masked."))
    capabilities = serializers.ListField(
        child=serializers.ChoiceField(choices=PlatformConnection.Capability.choices),
        required=False,
    )
    # Every stored value is answered, so the enum lists them all; only two may be written.
    status = serializers.ChoiceField(
        choices=PlatformConnection.Status.choices,
        required=False,
        help_text=_(
            "Read: the connection's health. Write: 'disabled' to stop using the connection, "
            "'unknown' to re-enable it (other values are refused)."
        ),
    )
    webhook_url = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text=_("The secret URL the platform posts events to; null unless admin or owner."),
    )
    has_token = serializers.SerializerMethodField()

    class Meta:
        model = PlatformConnection
        fields = [
            "id",
            "provider",
            "name",
            "base_url",
            "token",
            "has_token",
            "account",
            "password",
            "capabilities",
            "extra",
            "webhook_url",
            "status",
            "status_detail",
            "last_checked_at",
            "last_latency_ms",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "status_detail",
            "last_checked_at",
            "last_latency_ms",
            "created_at",
            "updated_at",
        ]

    def get_has_token(self, obj: PlatformConnection) -> bool:
        return bool(obj.token)

    def validate_status(self, value: str) -> str:
        writable = (PlatformConnection.Status.UNKNOWN, PlatformConnection.Status.DISABLED)
        if value not in writable:
            raise serializers.ValidationError(_("Only 'unknown' or 'disabled' can be set."))
        return value

    def validate_extra(self, value):
        return _json_object(value)

    def to_representation(self, instance):
        data = super().to_representation(instance)
        # The webhook URL's secret lets anyone inject customer messages: admins and owners only.
        if not _is_admin(self.context.get("request")):
            data["webhook_url"] = None
        return data

    def validate(self, attrs):
        if self.instance is not None and "provider" in attrs:
            if attrs["provider"] != self.instance.provider:
                raise serializers.ValidationError(
                    {"provider": [_("The provider of a connection cannot change.")]}
                )
            attrs.pop("provider")
        return attrs


class AIAppSerializer(serializers.ModelSerializer):
    api_key = SecretField(help_text=_("Write-only; answered masked (sk-...abcd)."))
    has_api_key = serializers.SerializerMethodField()

    class Meta:
        model = AIApp
        fields = [
            "id",
            "provider",
            "name",
            "base_url",
            "api_key",
            "has_api_key",
            "model",
            "app_id",
            "streaming",
            "temperature",
            "max_tokens",
            "system_prompt",
            "purpose",
            "is_default",
            "enabled",
            "extra",
            "last_checked_at",
            "last_check_ok",
            "last_check_detail",
            "last_latency_ms",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "last_checked_at",
            "last_check_ok",
            "last_check_detail",
            "last_latency_ms",
            "created_at",
            "updated_at",
        ]

    def get_has_api_key(self, obj: AIApp) -> bool:
        return bool(obj.api_key)

    def validate_extra(self, value):
        return _json_object(value)

    def validate(self, attrs):
        if self.instance is not None and "provider" in attrs:
            if attrs["provider"] != self.instance.provider:
                raise serializers.ValidationError(
                    {"provider": [_("The provider of an AI app cannot change.")]}
                )
            attrs.pop("provider")
        return attrs


class FastGPTWorkflowSerializer(AIAppSerializer):
    """A FastGPT app/workflow registration (an AI app whose provider is always FastGPT)."""

    provider = serializers.CharField(read_only=True)

    class Meta(AIAppSerializer.Meta):
        pass


class CheckResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    latency_ms = serializers.IntegerField()
    detail = serializers.CharField(allow_blank=True)
    error_class = serializers.CharField(allow_null=True)
    text = serializers.CharField(allow_null=True, required=False)
    input_tokens = serializers.IntegerField(allow_null=True, required=False)
    output_tokens = serializers.IntegerField(allow_null=True, required=False)


class AIAppTestRequestSerializer(serializers.Serializer):
    prompt = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class StatsQuerySerializer(QuerySerializer):
    hours = serializers.IntegerField(required=False, min_value=1, max_value=24 * 90)


class OperationStatsSerializer(serializers.Serializer):
    operation = serializers.CharField()
    total_requests = serializers.IntegerField()
    failed_requests = serializers.IntegerField()
    average_response_time = serializers.FloatField(allow_null=True)


class CallStatsSerializer(serializers.Serializer):
    window_start = serializers.DateTimeField()
    window_end = serializers.DateTimeField()
    total_requests = serializers.IntegerField()
    successful_requests = serializers.IntegerField()
    failed_requests = serializers.IntegerField()
    success_rate = serializers.FloatField(allow_null=True, help_text=_("Percent of attempts."))
    error_rate = serializers.FloatField(allow_null=True)
    average_response_time = serializers.FloatField(allow_null=True, help_text=_("Seconds."))
    max_response_time = serializers.FloatField(allow_null=True)
    last_call_at = serializers.DateTimeField(allow_null=True)
    errors = serializers.DictField(child=serializers.IntegerField())
    operations = OperationStatsSerializer(many=True)


class ServiceStatsSerializer(CallStatsSerializer):
    service_name = serializers.CharField()
    services = serializers.ListField(child=serializers.CharField())


class HealthItemSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    healthy = serializers.BooleanField(allow_null=True)
    status = serializers.CharField()
    detail = serializers.CharField(allow_blank=True)
    response_time = serializers.FloatField(allow_null=True)
    last_check = serializers.DateTimeField(allow_null=True)


class ServiceHealthSerializer(serializers.Serializer):
    service_name = serializers.CharField()
    configured = serializers.BooleanField()
    healthy = serializers.BooleanField()
    response_time = serializers.FloatField(allow_null=True, help_text=_("Seconds, last checks."))
    last_check = serializers.DateTimeField(allow_null=True)
    items = HealthItemSerializer(many=True)
    stats = CallStatsSerializer()


class OverviewSerializer(serializers.Serializer):
    services = serializers.DictField(child=ServiceHealthSerializer())
    gewe_status = ServiceHealthSerializer()
    fastgpt_status = ServiceHealthSerializer()
    total_integrations = serializers.IntegerField()
    active_integrations = serializers.IntegerField()
    last_sync = serializers.DateTimeField(allow_null=True)


class IntegrationCallSerializer(serializers.ModelSerializer):
    class Meta:
        model = IntegrationCall
        fields = [
            "id",
            "service",
            "operation",
            "http_status",
            "ok",
            "error_class",
            "latency_ms",
            "request_id",
            "attempt",
            "connection",
            "ai_app",
            "wechat_account_id",
            "at",
        ]
        read_only_fields = fields
