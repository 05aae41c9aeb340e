"""Admin of the monitoring app."""

from django.contrib import admin, messages
from django.db.models import Q
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from apps.core.admin import ADMINS, EVERYONE, MANAGERS, OrgScopedAdmin, request_role
from apps.core.money import format_money
from apps.monitoring.models import Notification, NotificationDelivery, NotificationWebhook
from apps.orgs.models import Role

NOTIFICATION_CATEGORIES = {
    "account_status": _("WeChat account"),
    "handoff": _("Handoff to a person"),
    "budget": _("Budget"),
    "alert": _("Alert"),
    "manual": _("Message from the team"),
}


class NotificationCategoryFilter(admin.SimpleListFilter):
    title = _("category")
    parameter_name = "category"

    def lookups(self, request, model_admin):
        return list(NOTIFICATION_CATEGORIES.items())

    def queryset(self, request, queryset):
        return queryset.filter(category=self.value()) if self.value() else queryset


@admin.register(Notification)
class NotificationAdmin(OrgScopedAdmin):
    """Read-only here; an agent sees their own notifications (and the organisation-wide ones),
    the other roles every notification of the organisation."""

    view_roles = EVERYONE
    edit_roles = ()
    list_display = ["title_link", "type", "category_label", "user", "read_at", "created_at"]
    list_filter = [
        "type",
        NotificationCategoryFilter,
        ("read_at", admin.EmptyFieldListFilter),
        "created_at",
    ]
    search_fields = ["title", "message", "user__email"]
    raw_id_fields = ["user"]
    date_hierarchy = "created_at"
    actions = ["mark_read"]
    readonly_fields = ["org", "user", "type", "category", "title", "message", "action_url", "data"]

    @admin.display(description=_("title"), ordering="title")
    def title_link(self, obj):
        if obj.action_url.startswith("/admin/"):
            return format_html('{} <a href="{}">{}</a>', obj.title, obj.action_url, _("Open"))
        return obj.title

    @admin.display(description=_("category"), ordering="category")
    def category_label(self, obj):
        return NOTIFICATION_CATEGORIES.get(obj.category, obj.category or "—")

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_superuser or request_role(request) != Role.AGENT:
            return queryset
        return queryset.filter(Q(user=request.user) | Q(user__isnull=True))

    @admin.action(description=_("Mark my selected notifications as read"), permissions=["view"])
    def mark_read(self, request, queryset):
        from apps.monitoring import services as monitoring_services

        count = 0
        for notification in queryset.filter(user=request.user, read_at__isnull=True):
            monitoring_services.notification_mark_read(
                org=notification.org, user=request.user, notification_id=notification.pk
            )
            count += 1
        self.message_user(
            request, _("%(n)d notification(s) marked as read.") % {"n": count}, messages.SUCCESS
        )


@admin.register(NotificationWebhook)
class NotificationWebhookAdmin(OrgScopedAdmin):
    edit_roles = ADMINS
    list_display = ["name", "kind", "min_type", "is_active", "org", "created_at"]
    list_filter = ["kind", "min_type", "is_active"]
    search_fields = ["name"]


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(OrgScopedAdmin):
    add_roles = ()
    list_display = ["channel", "target", "status", "attempts", "org", "sent_at", "created_at"]
    list_filter = ["channel", "status"]
    search_fields = ["target", "last_error"]
    raw_id_fields = ["notification", "webhook"]
    readonly_fields = ["last_error", "attempts", "sent_at"]


# ==================================================================================================
# Health checks, alerts and the monitoring dashboard (the monitoring work).
# ==================================================================================================

from datetime import timedelta as _timedelta  # noqa: E402

from django.contrib import messages as _messages  # noqa: E402
from django.core.exceptions import PermissionDenied as _PermissionDenied  # noqa: E402
from django.http import Http404 as _Http404  # noqa: E402
from django.template.response import TemplateResponse as _TemplateResponse  # noqa: E402
from django.urls import path as _path  # noqa: E402
from django.urls import reverse as _reverse  # noqa: E402
from django.utils import timezone as _timezone  # noqa: E402
from django.utils.translation import gettext as _gettext  # noqa: E402
from django.utils.translation import gettext_lazy as _lazy  # noqa: E402

from apps.core.admin import admin_org_ids as _admin_org_ids  # noqa: E402
from apps.monitoring import alerting as _alerting  # noqa: E402
from apps.monitoring import metrics as _metrics  # noqa: E402
from apps.monitoring.models import (  # noqa: E402
    Alert,
    AlertRule,
    HealthSample,
    MonitoringConfig,
)
from apps.orgs.models import Organization as _Organization  # noqa: E402

SERVICE_STATUS_LABELS = {
    "healthy": _lazy("Healthy"),
    "degraded": _lazy("Degraded"),
    "down": _lazy("Down"),
    "unknown": _lazy("Not checked yet"),
}


def sparkline(values: list[float | None], *, width: int = 160, height: int = 32) -> dict:
    """Points of an inline-SVG polyline for ``values`` (gaps skipped), scaled to the box."""
    present = [(i, v) for i, v in enumerate(values) if v is not None]
    if not present:
        return {"points": "", "width": width, "height": height, "max": None}
    top = max(v for _i, v in present) or 1.0
    step = width / max(1, len(values) - 1)
    points = " ".join(
        f"{round(i * step, 1)},{round(height - 2 - (v / top) * (height - 4), 1)}"
        for i, v in present
    )
    return {"points": points, "width": width, "height": height, "max": round(top, 3)}


@admin.register(Alert)
class AlertAdmin(OrgScopedAdmin):
    edit_roles = MANAGERS  # managers resolve alerts
    list_display = [
        "title",
        "type",
        "severity",
        "service",
        "target",
        "count",
        "last_seen_at",
        "resolved_at",
        "org",
    ]
    list_filter = ["severity", "type", "service", ("resolved_at", admin.EmptyFieldListFilter)]
    search_fields = ["title", "message", "fingerprint", "target"]
    date_hierarchy = "last_seen_at"
    list_select_related = ["org"]
    readonly_fields = [
        "org",
        "type",
        "severity",
        "service",
        "target",
        "title",
        "message",
        "metadata",
        "fingerprint",
        "first_seen_at",
        "last_seen_at",
        "count",
        "clear_since",
        "resolved_at",
        "resolved_by",
        "resolution",
    ]
    actions = ["resolve_selected"]
    change_list_template = "admin/monitoring/alert/change_list.html"

    def has_add_permission(self, request):
        return False

    @admin.action(description=_lazy("Resolve selected alerts"), permissions=["change"])
    def resolve_selected(self, request, queryset):
        resolved = 0
        for alert in queryset.filter(resolved_at__isnull=True).select_related("org"):
            _alerting.alert_resolve(org=alert.org, alert_id=alert.id, user=request.user)
            resolved += 1
        self.message_user(
            request,
            _gettext("%(n)d alert(s) resolved.") % {"n": resolved},
            _messages.SUCCESS,
        )

    def get_urls(self):
        return [
            _path(
                "dashboard/",
                self.admin_site.admin_view(self.dashboard_view),
                name="monitoring_alert_dashboard",
            ),
            *super().get_urls(),
        ]

    def dashboard_view(self, request):
        """One organisation's services with status and a response-time sparkline, its open
        alerts and today's cost."""
        if not self.has_view_permission(request):
            raise _PermissionDenied
        if request.user.is_superuser:
            orgs = list(_Organization.objects.order_by("name"))
        else:
            orgs = list(
                _Organization.objects.filter(id__in=_admin_org_ids(request.user)).order_by("name")
            )
        if not orgs:
            raise _PermissionDenied
        org = next((o for o in orgs if o.id in _admin_org_ids(request.user)), orgs[0])
        requested = request.GET.get("org")
        if requested:
            org = next((o for o in orgs if str(o.id) == requested), None)
            if org is None:
                raise _Http404  # another organisation's dashboard looks like a missing one
        overview = _metrics.overview(org=org)
        services = []
        for key, entry in overview["services"].items():
            trend = _metrics.service_trends(org=org, service=key, hours=24, points=48)
            by_at = [p["response_time"] for p in trend["series"]]
            services.append(
                {
                    "key": key,
                    **entry,
                    "status_label": SERVICE_STATUS_LABELS.get(entry.get("status"), "—"),
                    "spark": sparkline(by_at),
                    "trend": trend["trends"],
                }
            )
        open_alerts = Alert.objects.filter(org=org, resolved_at__isnull=True).order_by(
            "-last_seen_at"
        )[:50]
        context = {
            **self.admin_site.each_context(request),
            "title": _gettext("Monitoring dashboard"),
            "opts": self.model._meta,
            "orgs": orgs,
            "org": org,
            "overview": overview,
            "services": services,
            "open_alerts": open_alerts,
            "cost_today": _alerting.cost_today(org=org),
            "overview_cards": [
                (_gettext("Services"), overview["total_services"]),
                (_gettext("Healthy"), overview["healthy_services"]),
                (_gettext("Degraded"), overview["degraded_services"]),
                (_gettext("Down"), overview["down_services"]),
                (_gettext("Open alerts"), overview["active_alerts"]),
                (_gettext("Cost today"), format_money(_alerting.cost_today(org=org), "CNY", 4)),
                (
                    _gettext("Checks"),
                    _gettext("on") if overview["monitoring_enabled"] else _gettext("off"),
                ),
            ],
            "alerts_url": _reverse("admin:monitoring_alert_changelist"),
            "since": _timezone.now() - _timedelta(hours=24),
        }
        return _TemplateResponse(request, "admin/monitoring/dashboard.html", context)


@admin.register(AlertRule)
class AlertRuleAdmin(OrgScopedAdmin):
    edit_roles = ADMINS
    list_display = ["service", "metric", "warning", "critical", "enabled", "org"]
    list_filter = ["metric", "enabled", "service"]
    search_fields = ["service"]


@admin.register(MonitoringConfig)
class MonitoringConfigAdmin(OrgScopedAdmin):
    list_display = ["org", "enabled", "interval_seconds", "ai_live_checks", "last_run_at"]
    list_filter = ["enabled", "ai_live_checks"]
    search_fields = ["org__name"]
    readonly_fields = ["last_run_at"]


@admin.register(HealthSample)
class HealthSampleAdmin(OrgScopedAdmin):
    """Read-only. Platform samples (no organisation) are shown to superusers only."""

    list_display = ["service", "target_name", "target", "ok", "response_time_ms", "at", "org"]
    list_filter = ["service", "ok"]
    search_fields = ["target", "target_name", "error"]
    date_hierarchy = "at"
    show_full_result_count = False

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
