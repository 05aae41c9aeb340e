"""Admin of SOP campaigns: plans with inline steps, status, progress bars and life-cycle
actions (through the services); runs and deliveries read-only, deliveries exportable as CSV."""

from __future__ import annotations

from django.contrib import admin, messages
from django.http import HttpResponse
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from unfold.admin import StackedInline

from apps.core.admin import MANAGERS, OrgScopedAdmin
from apps.core.exceptions import ApplicationError
from apps.core.widgets import IdListField
from apps.sop import selectors, services
from apps.sop.models import SopDelivery, SopPlan, SopRun, SopStep


def progress_bar(obj) -> str:
    counts = {s: getattr(obj, f"n_{s}", 0) or 0 for s in selectors.STATUSES}
    total = sum(counts.values())
    done = counts["sent"] + counts["failed"] + counts["skipped"]
    percent = round(100 * done / total) if total else 0
    sent = round(100 * counts["sent"] / total) if total else 0
    return format_html(
        '<div title="{}" style="width:140px;background:#f0f0f0;border-radius:3px;'
        'display:inline-block;vertical-align:middle">'
        '<div style="width:{}%;background:#d9d9d9;height:10px;border-radius:3px">'
        '<div style="width:{}%;background:#52c41a;height:10px;border-radius:3px"></div>'
        "</div></div> {}/{}",
        ", ".join(f"{k}: {v}" for k, v in counts.items()),
        percent,
        round(100 * sent / percent) if percent else 0,
        done,
        total,
    )


class SopStepInline(StackedInline):
    model = SopStep
    fk_name = "plan"
    extra = 0
    exclude = ["org", "is_active"]
    ordering = ["order", "id"]
    fieldsets = [
        (None, {"fields": [("order", "kind"), ("delay_days", "delay_hours", "delay_minutes")]}),
        (None, {"fields": ["send_time", "text", "media_file", "url", "file_name"]}),
        (None, {"fields": ["title", "description"]}),
        (None, {"fields": ["ai_prompt", ("condition", "condition_tag")]}),
        (None, {"fields": [("end_action", "end_tag", "end_plan")]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).filter(is_active=True)


@admin.register(SopPlan)
class SopPlanAdmin(OrgScopedAdmin):
    edit_roles = MANAGERS

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # Explicit targets are picked by name with a search, never typed as JSON ids.
        if db_field.name == "target_contact_ids":
            field = IdListField(
                model_label="wechat_accounts.Contact",
                label=db_field.verbose_name,
                required=False,
                help_text=_("Search customers by name or WeChat id."),
            )
            if request.user.is_superuser:
                field.queryset = field.model.objects.all()
            else:
                field.queryset = field.model.objects.filter(org_id__in=self.org_ids(request))
            return field
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    list_display = ["name", "org", "status", "trigger", "target_type", "progress", "activated_at"]
    list_filter = ["status", "trigger", "target_type", ("org", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["name", "description"]
    filter_horizontal = ["accounts", "include_tags", "exclude_tags"]
    readonly_fields = [
        "status",
        "activated_at",
        "finished_at",
        "created_by",
        "progress",
        "estimate",
        "next_runs",
    ]
    inlines = [SopStepInline]
    actions = ["activate", "pause", "resume", "cancel"]
    fieldsets = [
        (None, {"fields": ["org", "name", "description", "owner", "status", "progress"]}),
        (
            _("Targets"),
            {
                "fields": [
                    "accounts",
                    "target_type",
                    "target_contact_ids",
                    "tag_match",
                    "include_tags",
                    "exclude_tags",
                ]
            },
        ),
        (
            _("Trigger"),
            {
                "fields": [
                    "trigger",
                    "start_at",
                    "cron",
                    "next_runs",
                    "relative_event",
                    "relative_tag",
                    "enroll_existing",
                    "estimate",
                ]
            },
        ),
        (
            _("Stop and quiet hours"),
            {
                "fields": [
                    "stop_on_reply",
                    "stop_on_handoff",
                    "stop_tag",
                    "stop_after",
                    "quiet_hours_mode",
                    "quiet_hours_start",
                    "quiet_hours_end",
                    "ai_app",
                ]
            },
        ),
        (_("History"), {"fields": ["activated_at", "finished_at", "created_by"]}),
    ]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**selectors.progress_annotations())

    @admin.display(description=_("progress"))
    def progress(self, obj):
        return progress_bar(obj)

    @admin.display(description=_("estimated finish"))
    def estimate(self, obj):
        if not obj.pk:
            return "-"
        data = services.plan_estimate(org=obj.org, plan_id=obj.pk)
        finish = data["estimated_finish_at"]
        return _("%(targets)s targets x %(steps)s steps; finish ≈ %(finish)s") % {
            "targets": data["targets"],
            "steps": data["steps"],
            "finish": finish.astimezone(obj.org.tzinfo).strftime("%Y-%m-%d %H:%M")
            if finish
            else "-",
        }

    @admin.display(description=_("next runs"))
    def next_runs(self, obj):
        if not obj.pk:
            return "-"
        return (
            ", ".join(
                t.strftime("%Y-%m-%d %H:%M %Z") for t in services.next_fire_times(obj, count=3)
            )
            or "-"
        )

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
            obj.owner = obj.owner or request.user
        super().save_model(request, obj, form, change)

    def save_formset(self, request, form, formset, change):
        instances = formset.save(commit=False)
        for step in instances:
            step.org_id = form.instance.org_id
            step.save()
        for step in formset.deleted_objects:
            if step.deliveries.exists():
                step.is_active = False
                step.save(update_fields=["is_active", "updated_at"])
                step.deliveries.filter(status=SopDelivery.Status.SCHEDULED).update(
                    status=SopDelivery.Status.SKIPPED, reason=services.R_STEP_REMOVED
                )
            else:
                step.delete()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        plan = form.instance
        if plan.status in (SopPlan.Status.ACTIVE, SopPlan.Status.PAUSED):
            services.plan_update(org=plan.org, plan_id=plan.pk)  # reschedule, beat entry

    def _run(self, request, queryset, service, done_message):
        ok = 0
        for plan in queryset:
            try:
                service(org=plan.org, plan_id=plan.pk)
                ok += 1
            except ApplicationError as exc:
                self.message_user(request, f"{plan}: {exc}", messages.WARNING)
        if ok:
            self.message_user(request, done_message % {"n": ok}, messages.SUCCESS)

    @admin.action(description=_("Activate the selected plans"))
    def activate(self, request, queryset):
        self._run(request, queryset, services.plan_activate, _("%(n)s plan(s) activated."))

    @admin.action(description=_("Pause the selected plans"))
    def pause(self, request, queryset):
        self._run(request, queryset, services.plan_pause, _("%(n)s plan(s) paused."))

    @admin.action(description=_("Resume the selected plans"))
    def resume(self, request, queryset):
        self._run(request, queryset, services.plan_resume, _("%(n)s plan(s) resumed."))

    @admin.action(description=_("Cancel the selected plans"))
    def cancel(self, request, queryset):
        self._run(request, queryset, services.plan_cancel, _("%(n)s plan(s) cancelled."))


class _ReadOnlyMixin:
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(SopRun)
class SopRunAdmin(_ReadOnlyMixin, OrgScopedAdmin):
    list_display = ["plan", "occurrence", "status", "started_at", "target_count", "progress"]
    list_filter = ["status", ("org", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["plan__name", "occurrence"]
    list_select_related = ["plan"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**selectors.progress_annotations())

    @admin.display(description=_("progress"))
    def progress(self, obj):
        return progress_bar(obj)


@admin.register(SopDelivery)
class SopDeliveryAdmin(_ReadOnlyMixin, OrgScopedAdmin):
    list_display = ["id", "plan", "contact", "step", "due_at", "status", "reason", "attempts"]
    list_filter = [
        "status",
        ("plan", admin.RelatedOnlyFieldListFilter),
        ("org", admin.RelatedOnlyFieldListFilter),
    ]
    search_fields = ["contact__wxid", "contact__nickname", "reason"]
    list_select_related = ["plan", "contact", "step"]
    date_hierarchy = "due_at"
    actions = ["export_csv"]

    @admin.action(description=_("Export the selected deliveries as CSV"), permissions=["view"])
    def export_csv(self, request, queryset):
        response = HttpResponse(
            services.deliveries_csv(queryset=queryset), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = 'attachment; filename="sop-deliveries.csv"'
        return response

    def has_view_permission(self, request, obj=None):
        return OrgScopedAdmin.has_view_permission(self, request, obj)
