"""Serializers of the agent inbox API."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.conversations.media import media_payload
from apps.conversations.models import CannedReply, Conversation, ConversationNote, Message
from apps.conversations.selectors import contact_display_name
from apps.core.api.serializers import OrgScopedPrimaryKeyRelatedField
from apps.integrations.models import AIApp
from apps.media.models import MediaFile
from apps.wechat_accounts.models import ReplyMode


class ContactBriefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    wxid = serializers.CharField()
    kind = serializers.CharField()
    nickname = serializers.CharField()
    remark = serializers.CharField()
    avatar_url = serializers.CharField()
    is_blocked = serializers.BooleanField()


class ConversationSerializer(serializers.ModelSerializer):
    account_name = serializers.CharField(source="account.name", read_only=True, default="")
    contact = ContactBriefSerializer(read_only=True)
    display_name = serializers.SerializerMethodField()
    assignee_name = serializers.SerializerMethodField()
    has_drafts = serializers.BooleanField(read_only=True, default=False)
    labels = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    last_message_text = serializers.CharField(read_only=True, default="")
    ai_session = serializers.SerializerMethodField()

    class Meta:
        model = Conversation
        fields = [
            "id",
            "account",
            "account_name",
            "contact",
            "display_name",
            "status",
            "mode",
            "priority",
            "assignee",
            "assignee_name",
            "labels",
            "unread_count",
            "last_message_at",
            "last_inbound_at",
            "last_message_text",
            "has_drafts",
            "snooze_until",
            "ai_app",
            "reply_mode",
            "ai_session",
            "ai_paused_until",
            "handoff_reason",
            "handed_off_at",
            "resolved_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_ai_session(self, obj: Conversation) -> str:
        return obj.ai_session_state()

    def get_display_name(self, obj: Conversation) -> str:
        return contact_display_name(obj.contact)

    def get_assignee_name(self, obj: Conversation) -> str:
        user = obj.assignee
        return (user.get_full_name() or user.email) if user is not None else ""


class ConversationUpdateSerializer(serializers.Serializer):
    priority = serializers.ChoiceField(choices=Conversation.Priority.choices, required=False)
    reply_mode = serializers.ChoiceField(
        choices=[("", "")] + list(ReplyMode.choices),
        required=False,
        help_text="auto, draft, off, or empty for the WeChat account's mode",
    )
    ai_app = OrgScopedPrimaryKeyRelatedField(
        queryset=AIApp.objects.all(), required=False, allow_null=True
    )


class MessageMediaSerializer(serializers.Serializer):
    """The stored file of a message (``apps.conversations.media.media_payload``)."""

    status = serializers.ChoiceField(choices=["pending", "ready", "failed"])
    error = serializers.CharField()
    id = serializers.IntegerField(required=False)
    kind = serializers.CharField(required=False)
    name = serializers.CharField(required=False)
    size = serializers.IntegerField(required=False)
    content_type = serializers.CharField(required=False)
    url = serializers.CharField(required=False)


class MessageSerializer(serializers.ModelSerializer):
    sender_user_name = serializers.SerializerMethodField()
    media = serializers.SerializerMethodField()

    class Meta:
        model = Message
        fields = [
            "id",
            "conversation",
            "direction",
            "sender_kind",
            "sender_wxid",
            "sender_name",
            "sender_user",
            "sender_user_name",
            "kind",
            "text",
            "media_url",
            "media",
            "payload",
            "status",
            "platform_msg_id",
            "error",
            "mentions_account",
            "ai_app",
            "ai_input_tokens",
            "ai_output_tokens",
            "ai_cost",
            "ai_latency_ms",
            "intent",
            "sentiment",
            "sentiment_score",
            "created_at",
            "sent_at",
        ]
        read_only_fields = fields

    @extend_schema_field(MessageMediaSerializer(allow_null=True))
    def get_media(self, obj: Message) -> dict | None:
        return media_payload(obj)

    def get_sender_user_name(self, obj: Message) -> str:
        user = obj.sender_user if obj.sender_user_id else None
        return (user.get_full_name() or user.email) if user is not None else ""


class AgentReplySerializer(serializers.Serializer):
    kind = serializers.ChoiceField(
        choices=[
            Message.Kind.TEXT,
            Message.Kind.IMAGE,
            Message.Kind.FILE,
            Message.Kind.VIDEO,
            Message.Kind.LINK,
        ],
        default=Message.Kind.TEXT,
    )
    # media: an uploaded file (POST /api/v1/media/files/) for image / file / video messages.
    media = OrgScopedPrimaryKeyRelatedField(
        queryset=MediaFile.objects.all(), required=False, allow_null=True, default=None
    )
    duration_s = serializers.IntegerField(required=False, min_value=0, default=0)
    text = serializers.CharField(required=False, allow_blank=True, default="", max_length=10000)
    url = serializers.URLField(required=False, allow_blank=True, default="", max_length=1000)
    file_name = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    title = serializers.CharField(required=False, allow_blank=True, default="", max_length=200)
    canned_reply = serializers.IntegerField(required=False, allow_null=True, default=None)
    client_msg_id = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=100
    )

    def validate(self, attrs):
        if (
            attrs["kind"] == Message.Kind.TEXT
            and not attrs["text"].strip()
            and attrs["canned_reply"] is None
        ):
            raise serializers.ValidationError(
                {"text": [_("Write a message or pick a canned reply.")]}
            )
        return attrs


class HandoffSerializer(serializers.Serializer):
    mode = serializers.ChoiceField(choices=Conversation.Mode.choices)


class AssignSerializer(serializers.Serializer):
    assignee = serializers.IntegerField(allow_null=True, help_text=_("User id; null unassigns."))


class SnoozeSerializer(serializers.Serializer):
    until = serializers.DateTimeField()


class LabelsSerializer(serializers.Serializer):
    labels = serializers.ListField(
        child=serializers.CharField(max_length=60), allow_empty=True, max_length=50
    )


class CannedReplySerializer(serializers.ModelSerializer):
    class Meta:
        model = CannedReply
        fields = ["id", "title", "shortcut", "text", "created_by", "created_at", "updated_at"]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]


class CannedReplyRenderSerializer(serializers.Serializer):
    conversation = serializers.IntegerField()


class RenderedSerializer(serializers.Serializer):
    text = serializers.CharField()


class ViewCountsSerializer(serializers.Serializer):
    mine = serializers.IntegerField()
    unassigned = serializers.IntegerField()
    waiting = serializers.IntegerField()
    ai = serializers.IntegerField()
    resolved = serializers.IntegerField()
    all = serializers.IntegerField()
    unread = serializers.IntegerField()


class NoteSerializer(serializers.ModelSerializer):
    author_name = serializers.SerializerMethodField()

    class Meta:
        model = ConversationNote
        fields = ["id", "conversation", "text", "author", "author_name", "created_at"]
        read_only_fields = fields

    def get_author_name(self, obj: ConversationNote) -> str:
        user = obj.author
        return (user.get_full_name() or user.email) if user is not None else ""


class NoteCreateSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=10000)


class _TagSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    color = serializers.CharField()


class _PreviousConversationSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    account_name = serializers.CharField()
    status = serializers.CharField()
    last_message_at = serializers.DateTimeField(allow_null=True)


class CustomerPanelSerializer(serializers.Serializer):
    contact = ContactBriefSerializer()
    display_name = serializers.CharField()
    alias = serializers.CharField()
    notes = serializers.CharField()
    account = serializers.DictField()
    tags = _TagSerializer(many=True)
    all_tags = _TagSerializer(many=True)
    previous_conversations = _PreviousConversationSerializer(many=True)
    ai_cost = serializers.CharField()
    latest_analysis = serializers.DictField(allow_null=True)
    sections = serializers.DictField()
    admin_urls = serializers.DictField()
