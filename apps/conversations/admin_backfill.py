"""Console page of analysis backfills (``AnalysisBackfill``): admins and owners request one for
a range of days; managers follow them. The list shows each one's progress and refreshes itself
while one is queued or running. The work is apps/conversations/backfill.py.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.widgets import UnfoldAdminDateWidget, UnfoldAdminSelectWidget

from apps.conversations import backfill as service
from apps.conversations.models import AnalysisBackfill
from apps.core.admin import ADMINS, MANAGERS, OrgScopedAdmin
from apps.core.exceptions import ApplicationError


class BackfillForm(forms.ModelForm):
    org = None  # set by the admin for the request's organisation

    class Meta:
        model = AnalysisBackfill
        fields = ["first_day", "last_day", "mode", "redo"]
        widgets = {
            "first_day": UnfoldAdminDateWidget,
            "last_day": UnfoldAdminDateWidget,
            "mode": UnfoldAdminSelectWidget,
        }

    def clean(self):
        cleaned = super().clean()
        first, last = cleaned.get("first_day"), cleaned.get("last_day")
        if first and last and self.org is not None:
            try:
                service.backfill_check(
                    org=self.org, first_day=first, last_day=last, mode=cleaned.get("mode") or ""
                )
            except ApplicationError as exc:
                raise forms.ValidationError(exc.message) from exc
        return cleaned


class AnalysisBackfillAdmin(OrgScopedAdmin):
    view_roles = MANAGERS
    edit_roles = ADMINS
    form = BackfillForm
    change_list_template = "admin/conversations/analysisbackfill/change_list.html"
    list_display = (
        "__str__",
        "mode_label",
        "state",
        "progress",
        "analysed",
        "failed",
        "requested_by",
        "created_at",
        "finished_at",
    )
    list_filter = ("state",)
    list_select_related = ("requested_by",)
    readonly_fields = (
        "first_day",
        "last_day",
        "mode",
        "redo",
        "state",
        "progress",
        "analysed",
        "failed",
        "error",
        "requested_by",
        "started_at",
        "finished_at",
    )
    actions = ["action_retry"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        ids = self.org_ids(request)
        if obj is None and len(ids) == 1:
            from apps.orgs.models import Organization

            form = type("BackfillFormForOrg", (form,), {"org": Organization.objects.get(pk=ids[0])})
        return form

    def get_fields(self, request, obj=None):
        return list(BackfillForm.Meta.fields) if obj is None else list(self.readonly_fields)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False  # a backfill is requested, then followed; it is not edited

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        created = service.backfill_request(
            org=form.org,
            user=request.user,
            first_day=form.cleaned_data["first_day"],
            last_day=form.cleaned_data["last_day"],
            mode=form.cleaned_data.get("mode") or "",
            redo=form.cleaned_data.get("redo", False),
        )
        obj.__dict__.update(created.__dict__)

    def changelist_view(self, request, extra_context=None):
        active = (
            self.get_queryset(request).filter(state__in=service.ACTIVE).exists()
            if self.has_view_permission(request)
            else False
        )
        return super().changelist_view(request, {**(extra_context or {}), "refresh": active})

    @admin.display(description=_("analysis"))
    def mode_label(self, obj: AnalysisBackfill) -> str:
        return obj.get_mode_display()

    @admin.display(description=_("progress"))
    def progress(self, obj: AnalysisBackfill) -> str:
        if not obj.total:
            return "—" if obj.state != AnalysisBackfill.State.DONE else "0 / 0"
        percent = min(100, round(100 * obj.done / obj.total))
        return format_html(
            '<span title="{} / {}">{} / {}（{}%）</span>',
            obj.done,
            obj.total,
            obj.done,
            obj.total,
            percent,
        )

    @admin.action(description=_("Run the selected failed backfills again"))
    def action_retry(self, request, queryset):
        for item in queryset.filter(state=AnalysisBackfill.State.FAILED).select_related("org"):
            try:
                service.backfill_retry(org=item.org, backfill_id=item.pk)
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
            self.message_user(
                request, _("%(range)s queued again.") % {"range": item}, messages.SUCCESS
            )


def register() -> None:
    if not admin.site.is_registered(AnalysisBackfill):
        admin.site.register(AnalysisBackfill, AnalysisBackfillAdmin)
