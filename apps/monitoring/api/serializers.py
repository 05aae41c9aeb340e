from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.core.api.serializers import SecretField
from apps.monitoring.models import Notification, NotificationWebhook
from apps.orgs.models import Role


class NotificationSerializer(serializers.ModelSerializer):
    auto_close = serializers.SerializerMethodField()

    class Meta:
        model = Notification
        fields = [
            "id",
            "type",
            "category",
            "title",
            "message",
            "action_url",
            "data",
            "auto_close",
            "read_at",
            "created_at",
        ]
        read_only_fields = fields

    def get_auto_close(self, obj) -> bool:
        return obj.type in (Notification.Type.INFO, Notification.Type.SUCCESS)


class MarkAllReadResultSerializer(serializers.Serializer):
    updated = serializers.IntegerField()


class UnreadCountSerializer(serializers.Serializer):
    unread = serializers.IntegerField()


class NotificationWebhookSerializer(serializers.ModelSerializer):
    url = SecretField(required=True, allow_blank=False, max_length=1000)
    secret = SecretField(max_length=200)

    class Meta:
        model = NotificationWebhook
        fields = ["id", "name", "kind", "url", "secret", "min_type", "is_active", "created_at"]
        read_only_fields = ["id", "created_at"]

    def validate_url(self, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise serializers.ValidationError(_("Use an http(s) URL."))
        return value

    def validate_name(self, value: str) -> str:
        org = self.context["org"]
        clash = NotificationWebhook.objects.filter(org=org, name=value)
        if self.instance is not None:
            clash = clash.exclude(id=self.instance.id)
        if clash.exists():
            raise serializers.ValidationError(_("A webhook with this name exists."))
        return value


# --- the WebSocket management API ----------------------------------------------------------------


class WSConnectionSerializer(serializers.Serializer):
    connection_id = serializers.CharField()
    user_id = serializers.IntegerField()
    endpoint = serializers.CharField()
    conversation_ids = serializers.ListField(child=serializers.IntegerField())
    connected_at = serializers.DateTimeField()
    last_seen_at = serializers.DateTimeField()
    server = serializers.CharField()
    client = serializers.CharField()


class WSStatsSerializer(serializers.Serializer):
    total_connections = serializers.IntegerField()
    active_users = serializers.IntegerField()
    online_users = serializers.IntegerField()
    active_sessions = serializers.IntegerField()
    connections_by_endpoint = serializers.DictField(child=serializers.IntegerField())
    connects = serializers.IntegerField()
    disconnects = serializers.IntegerField()
    refused = serializers.IntegerField()
    messages_in = serializers.IntegerField()
    messages_out = serializers.IntegerField()
    errors = serializers.IntegerField()
    push_failures_this_process = serializers.IntegerField()


class WSHealthSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    redis = serializers.DictField()
    channel_layer = serializers.DictField()
    close_codes = serializers.DictField(child=serializers.CharField())


class WSOnlineUserSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    role = serializers.CharField()
    connections = serializers.IntegerField()


class WSBroadcastSerializer(serializers.Serializer):
    title = serializers.CharField(max_length=200)
    message = serializers.CharField(max_length=2000, allow_blank=True, required=False, default="")
    type = serializers.ChoiceField(
        choices=Notification.Type.choices, default=Notification.Type.INFO
    )


class WSDisconnectSerializer(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1)
    connection_id = serializers.CharField(
        max_length=64, required=False, allow_blank=True, default=""
    )


class WSNotifySerializer(serializers.Serializer):
    user_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), required=False, default=list, max_length=500
    )
    roles = serializers.ListField(
        child=serializers.ChoiceField(choices=Role.choices), required=False, default=list
    )
    type = serializers.ChoiceField(
        choices=Notification.Type.choices, default=Notification.Type.INFO
    )
    title = serializers.CharField(max_length=200)
    message = serializers.CharField(max_length=5000, allow_blank=True, required=False, default="")
    action_url = serializers.CharField(max_length=500, allow_blank=True, required=False, default="")

    def validate(self, attrs):
        if not attrs["user_ids"] and not attrs["roles"]:
            raise serializers.ValidationError(_("Give user_ids or roles."))
        return attrs


class WSNotifyResultSerializer(serializers.Serializer):
    notified = serializers.IntegerField()
    notification_ids = serializers.ListField(child=serializers.IntegerField())


class WSActionResultSerializer(serializers.Serializer):
    sent = serializers.BooleanField()
    connections = serializers.IntegerField()
