from __future__ import annotations

from django.contrib import admin
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from apps.core.admin import OrgScopedAdmin
from apps.media.models import MediaFile


@admin.register(MediaFile)
class MediaFileAdmin(OrgScopedAdmin):
    list_display = (
        "original_name",
        "kind",
        "human_size",
        "content_type",
        "source",
        "org",
        "created_at",
    )
    list_filter = ("kind", "source", "content_type", "created_at")
    search_fields = ("original_name", "checksum", "origin")
    readonly_fields = (
        "org",
        "kind",
        "original_name",
        "human_size",
        "content_type",
        "extension",
        "checksum",
        "storage_key",
        "source",
        "created_by",
        "origin",
        "created_at",
        "preview",
    )
    fields = readonly_fields
    list_select_related = ("org",)
    date_hierarchy = "created_at"

    def has_add_permission(self, request):
        return False  # files enter through uploads and downloads (validated), not the admin

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description=_("size"), ordering="size")
    def human_size(self, obj: MediaFile) -> str:
        return filesizeformat(obj.size)

    @admin.display(description=_("preview"))
    def preview(self, obj: MediaFile) -> str:
        url = reverse("media-file-content", kwargs={"pk": obj.pk}) + f"?org={obj.org_id}"
        if obj.kind == MediaFile.Kind.IMAGE:
            return format_html(
                '<img src="{}" alt="" style="max-width:320px;max-height:240px">', url
            )
        if obj.kind == MediaFile.Kind.VIDEO:
            return format_html('<video src="{}" controls style="max-width:320px"></video>', url)
        return format_html('<a href="{}&download=1">{}</a>', url, _("Download"))
