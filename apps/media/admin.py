from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.widgets import UnfoldAdminFileFieldWidget, UnfoldAdminSelectWidget

from apps.core.admin import EVERYONE, OrgScopedAdmin
from apps.core.exceptions import ApplicationError
from apps.media.models import MediaFile
from apps.media.services import (
    application_error_messages,
    media_file_create,
    media_upload_check,
)
from apps.orgs.models import Role


class MediaUploadForm(forms.ModelForm):
    """The console's upload: one file, its kind derived from the sniffed type unless chosen.
    Checked like an API upload (size, type) before anything is stored."""

    file = forms.FileField(label=_("File"), widget=UnfoldAdminFileFieldWidget)
    kind = forms.ChoiceField(
        label=_("kind"),
        required=False,
        choices=[("", _("From the file's type"))] + list(MediaFile.Kind.choices),
        widget=UnfoldAdminSelectWidget,
    )

    class Meta:
        model = MediaFile
        fields = []

    def clean(self):
        data = super().clean()
        upload = data.get("file")
        if upload is None:
            return data
        try:
            kind = media_upload_check(upload=upload, kind=data.get("kind") or None)
        except ApplicationError as exc:
            raise ValidationError(application_error_messages(exc)) from exc
        data["kind"] = kind
        return data


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

    add_roles = tuple(r for r in EVERYONE if r != Role.VIEWER)  # who may upload in the API
    add_form = MediaUploadForm

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = self.add_form
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        return ["file", "kind"] if obj is None else list(self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False  # a stored file never changes; upload a new one

    def save_model(self, request, obj, form, change):
        upload = form.cleaned_data["file"]
        stored = media_file_create(
            org=obj.org if obj.org_id else self._upload_org(request),
            content=upload,
            name=upload.name,
            kind=form.cleaned_data["kind"],
            created_by=request.user,
        )
        obj.__dict__.update(stored.__dict__)

    def _upload_org(self, request):
        from apps.orgs.models import Organization

        return Organization.objects.get(pk=self.org_ids(request)[0])

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
