"""Serializers of the WeChat accounts API."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.accounts.models import User
from apps.core.api.serializers import OrgScopedPrimaryKeyRelatedField
from apps.integrations.models import AIApp, PlatformConnection
from apps.media.models import MediaFile
from apps.wechat_accounts.models import (
    AccountStatusEvent,
    Contact,
    FriendRequest,
    GroupMember,
    MomentPost,
    MomentTimelineItem,
    Tag,
    WeChatAccount,
)


class MemberField(serializers.PrimaryKeyRelatedField):
    """A user who is a member of the request's organisation."""

    def get_queryset(self):
        org = self.context.get("org")
        if org is None:
            return User.objects.none()
        return User.objects.filter(memberships__org=org)


class WeChatAccountSerializer(serializers.ModelSerializer):
    connection = OrgScopedPrimaryKeyRelatedField(queryset=PlatformConnection.objects.all())
    default_ai_app = OrgScopedPrimaryKeyRelatedField(
        queryset=AIApp.objects.all(), required=False, allow_null=True
    )
    owner = MemberField(required=False, allow_null=True)

    class Meta:
        model = WeChatAccount
        fields = [
            "id",
            "connection",
            "owner",
            "name",
            "wxid",
            "nickname",
            "avatar_url",
            "device_id",
            "status",
            "status_reason",
            "status_changed_at",
            "last_seen_at",
            "login_state",
            "send_limit_per_minute",
            "send_limit_per_day",
            "quiet_hours_start",
            "quiet_hours_end",
            "delay_min_seconds",
            "delay_max_seconds",
            "default_ai_app",
            "private_reply_policy",
            "group_reply_policy",
            "reply_keywords",
            "auto_accept_friends",
            "welcome_message",
            "contacts_sync_state",
            "contacts_sync_done",
            "contacts_sync_total",
            "contacts_synced_at",
            "created_at",
        ]
        read_only_fields = [
            "wxid",
            "nickname",
            "avatar_url",
            "device_id",
            "status",
            "status_reason",
            "status_changed_at",
            "last_seen_at",
            "login_state",
            "contacts_sync_state",
            "contacts_sync_done",
            "contacts_sync_total",
            "contacts_synced_at",
            "created_at",
        ]


class WeChatAccountUpdateSerializer(WeChatAccountSerializer):
    class Meta(WeChatAccountSerializer.Meta):
        read_only_fields = [*WeChatAccountSerializer.Meta.read_only_fields, "connection"]


class LoginSerializer(serializers.Serializer):
    qr_image = serializers.CharField(help_text=_("data: URI of the QR image"))
    uuid = serializers.CharField()
    expires_in = serializers.IntegerField(allow_null=True)


class LoginStatusSerializer(serializers.Serializer):
    status = serializers.CharField()
    login_state = serializers.CharField(allow_blank=True)
    qr_image = serializers.CharField(allow_blank=True)
    uuid = serializers.CharField(allow_blank=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    nickname = serializers.CharField(allow_blank=True)
    wxid = serializers.CharField(allow_blank=True)


class OnlineCheckSerializer(serializers.Serializer):
    status = serializers.CharField()


class StatusEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AccountStatusEvent
        fields = ["id", "from_status", "to_status", "reason", "at"]


class TagSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tag
        fields = ["id", "name", "color", "created_at"]
        read_only_fields = ["created_at"]


class ContactSerializer(serializers.ModelSerializer):
    tags = OrgScopedPrimaryKeyRelatedField(queryset=Tag.objects.all(), many=True, required=False)

    class Meta:
        model = Contact
        fields = [
            "id",
            "account",
            "wxid",
            "kind",
            "nickname",
            "remark",
            "alias",
            "avatar_url",
            "sex",
            "tags",
            "added_at",
            "source",
            "attributes",
            "is_blocked",
            "removed_at",
            "synced_at",
        ]
        read_only_fields = [
            "account",
            "wxid",
            "kind",
            "nickname",
            "alias",
            "avatar_url",
            "sex",
            "added_at",
            "removed_at",
            "synced_at",
        ]


class ImportResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    errors = serializers.ListField(child=serializers.DictField())


class CSVUploadSerializer(serializers.Serializer):
    file = serializers.FileField()
    account = serializers.IntegerField(required=False)


class GroupMemberSerializer(serializers.ModelSerializer):
    class Meta:
        model = GroupMember
        fields = [
            "id",
            "member_wxid",
            "nickname",
            "display_name",
            "inviter_wxid",
            "is_admin",
            "is_owner",
        ]


class MomentSerializer(serializers.ModelSerializer):
    account = OrgScopedPrimaryKeyRelatedField(queryset=WeChatAccount.objects.all())
    visible_tags = OrgScopedPrimaryKeyRelatedField(
        queryset=Tag.objects.all(), many=True, required=False
    )
    images = serializers.ListField(
        child=serializers.URLField(max_length=1000),
        required=False,
        max_length=9,
        help_text=_('Public image URLs; stored images appear as "media:<id>".'),
    )
    # media: stored images (apps.media uploads) of an image Moment, sent as signed URLs.
    image_media = OrgScopedPrimaryKeyRelatedField(
        queryset=MediaFile.objects.filter(kind=MediaFile.Kind.IMAGE),
        many=True,
        required=False,
        write_only=True,
    )
    link = serializers.DictField(required=False)

    class Meta:
        model = MomentPost
        fields = [
            "id",
            "account",
            "text",
            "images",
            "image_media",
            "link",
            "visibility",
            "visible_tags",
            "scheduled_at",
            "status",
            "platform_id",
            "attempts",
            "error",
            "posted_at",
            "created_at",
        ]
        read_only_fields = ["status", "platform_id", "attempts", "error", "posted_at", "created_at"]


class TimelineItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = MomentTimelineItem
        fields = ["id", "moment_id", "author_wxid", "author_nickname", "posted_at"]


class FriendRequestSerializer(serializers.ModelSerializer):
    class Meta:
        model = FriendRequest
        fields = [
            "id",
            "account",
            "from_wxid",
            "nickname",
            "content",
            "scene",
            "status",
            "error",
            "handled_at",
            "created_at",
        ]
        read_only_fields = fields
