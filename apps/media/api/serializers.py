from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from apps.media.models import MediaFile


class MediaFileSerializer(serializers.ModelSerializer):
    content_url = serializers.SerializerMethodField(
        help_text=_("Members' URL of the bytes (org-checked; add ?download=1 to download).")
    )
    created_by = serializers.SerializerMethodField()

    class Meta:
        model = MediaFile
        fields = [
            "id",
            "kind",
            "original_name",
            "size",
            "content_type",
            "checksum",
            "source",
            "created_by",
            "origin",
            "created_at",
            "content_url",
        ]
        read_only_fields = fields

    def get_content_url(self, obj: MediaFile) -> str:
        return reverse("media-file-content", kwargs={"pk": obj.pk}) + f"?org={obj.org_id}"

    def get_created_by(self, obj: MediaFile) -> str | None:
        user = obj.created_by
        return (user.name or user.email) if user else None


class MediaFileUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True, use_url=False)
    kind = serializers.ChoiceField(
        choices=MediaFile.Kind.choices,
        required=False,
        help_text=_("What it will be sent as; derived from the sniffed type when omitted."),
    )
