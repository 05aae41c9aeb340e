"""``POST /api/v1/wechat-accounts/{id}/messages/``: one message from an account through the
outbound pipeline. The URL is the account's; the endpoint lives with the pipeline it feeds."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from apps.conversations import outbound
from apps.conversations.models import Message
from apps.core.api.views import OrgScopedAPIView
from apps.core.exceptions import NotFoundError
from apps.orgs.models import Role
from apps.wechat_accounts.models import WeChatAccount


class SendSerializer(serializers.Serializer):
    to = serializers.CharField(max_length=128)
    kind = serializers.ChoiceField(choices=["text", "image", "file", "link"], default="text")
    text = serializers.CharField(required=False, allow_blank=True, default="")
    url = serializers.URLField(required=False, allow_blank=True, default="", max_length=1000)
    file = serializers.CharField(
        required=False, allow_blank=True, default="", help_text=_("File name (kind file).")
    )
    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    thumb_url = serializers.URLField(required=False, allow_blank=True, default="")
    urgent = serializers.BooleanField(required=False, default=False)
    client_msg_id = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=128
    )


class OutboundMessageSerializer(serializers.ModelSerializer):
    class Meta:
        model = Message
        fields = [
            "id",
            "conversation",
            "account",
            "to_wxid",
            "kind",
            "text",
            "media_url",
            "payload",
            "status",
            "attempts",
            "error",
            "platform_msg_id",
            "client_msg_id",
            "sender_kind",
            "sender_user",
            "is_urgent",
            "not_before",
            "sent_at",
            "created_at",
        ]
        read_only_fields = fields


class AccountMessageView(OrgScopedAPIView):
    write_role = Role.AGENT

    @extend_schema(
        operation_id="wechat_accounts_messages_create",
        tags=["wechat-accounts"],
        request=SendSerializer,
        responses={202: OutboundMessageSerializer},
    )
    def post(self, request, pk: int):
        account = WeChatAccount.objects.filter(org=request.org, pk=pk).first()
        if account is None:
            raise NotFoundError(_("WeChat account not found."))
        data = SendSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        v = data.validated_data
        message = outbound.send(
            org=request.org,
            account=account,
            to_wxid=v["to"],
            kind=v["kind"],
            text=v["text"],
            url=v["url"],
            file_name=v["file"],
            title=v["title"],
            description=v["description"],
            thumb_url=v["thumb_url"],
            urgent=v["urgent"],
            client_msg_id=v["client_msg_id"],
            sender_kind=Message.SenderKind.AGENT,
            sender_user=request.user,
        )
        message.refresh_from_db()
        return Response(OutboundMessageSerializer(message).data, status=status.HTTP_202_ACCEPTED)
