"""The console's reports page: charts (Chart.js shipped by django-unfold, initialised by its
``canvas.chart`` components), the tables under them, a date range and filters, CSV downloads.

It is the change list of ``DailyStat`` (the app's one admin entry), scoped to the active
organisation; agents see their own figures, managers and above the organisation's.
"""

from __future__ import annotations

import datetime as dt
import json

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.admin import OrgScopedAdmin
from apps.core.console import console_membership
from apps.core.exceptions import ApplicationError
from apps.core.money import format_money
from apps.orgs.models import Role
from apps.reports import exports, selectors
from apps.reports.formatting import duration
from apps.reports.models import DailyStat
from apps.reports.services import local_day

REPORT_ROLES = (Role.VIEWER, Role.AGENT, Role.MANAGER, Role.ADMIN, Role.OWNER)
SPANS = (7, 30, 90)
COLORS = {
    "inbound": "#3b82f6",
    "ai": "#10b981",
    "agent": "#f59e0b",
    "handoffs": "#ef4444",
    "resolved": "#8b5cf6",
}


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _date(value: str | None) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def line_chart(series: list[dict], lines: list[tuple[str, str, str]]) -> str:
    return json.dumps(
        {
            "labels": [row["day"].strftime("%m-%d") for row in series],
            "datasets": [
                {
                    "label": label,
                    "data": [row[key] for row in series],
                    "borderColor": color,
                    "backgroundColor": color,
                }
                for key, label, color in lines
            ],
        }
    )


def bar_chart(labels: list[str], datasets: list[tuple[str, list, str]]) -> str:
    return json.dumps(
        {
            "labels": labels,
            "datasets": [
                {"label": label, "data": data, "backgroundColor": color}
                for label, data, color in datasets
            ],
        }
    )


def handoff_labels() -> dict[str, str]:
    return {
        "keyword": _("Handoff keyword"),
        "sentiment": _("Negative sentiment"),
        "ai_failed": _("AI failure"),
        "budget": _("Budget exhausted"),
        "phone_reply": _("Reply from the phone"),
        "agent": _("Agent takeover"),
        "no_ai_app": _("No AI app"),
        "other": _("Other"),
    }


def page_context(f: selectors.ReportFilter, *, own_only: bool) -> dict:
    """Everything the page shows (also the dashboard block's source)."""
    overview = selectors.report("overview", f)
    conversations = selectors.report("conversations", f)
    agents = selectors.report("agents", f)
    accounts = selectors.report("accounts", f)
    sop = selectors.report("sop", f)
    cost = selectors.report("cost", f)
    s = overview["summary"]
    cards = [
        (_("Customer messages"), s["inbound_messages"]),
        (_("Conversations started"), s["conversations_started"]),
        (_("Resolved"), s["conversations_resolved"]),
        (_("Answered by the AI alone"), s["fully_automated"]),
        (_("Handoffs"), s["handoffs"]),
        (_("Waiting for a person now"), s["still_waiting"]),
        (_("First AI response (median)"), duration(s["first_ai_response_p50"])),
        (_("First human response (median)"), duration(s["first_human_response_p50"])),
        (
            _("Wait after a handoff (median / p90)"),
            f"{duration(s['handoff_wait_p50'])} / {duration(s['handoff_wait_p90'])}",
        ),
        (_("Total cost"), format_money(s["total_cost"])),
        (_("Cost per conversation"), format_money(s["cost_per_conversation"])),
        (_("Cost per AI answer"), format_money(s["cost_per_ai_answer"], places=4)),
    ]
    labels = handoff_labels()
    reasons = conversations["handoffs_by_reason"]
    speed_names = {
        "first_ai_response": _("First AI response"),
        "first_human_response": _("First human response"),
        "handoff_wait": _("Wait for a person after a handoff"),
        "resolution": _("Resolution time"),
    }
    speed = [
        {
            "name": speed_names[key],
            "count": value["count"],
            "p50": duration(value["p50"]),
            "p90": duration(value["p90"]),
        }
        for key, value in conversations["speed"].items()
    ]
    for row in agents["rows"]:
        for key in (
            "first_response_p50",
            "first_response_p90",
            "handoff_wait_p50",
            "handoff_wait_p90",
        ):
            row[f"{key}_text"] = duration(row[key])
        row["cost_text"] = format_money(row["cost"])
    for row in accounts["rows"]:
        row["cost_text"] = format_money(row["cost"])
    for row in sop["rows"]:
        row["reply_rate_text"] = (
            f"{row['reply_rate'] * 100:.1f}%" if row["reply_rate"] is not None else "—"
        )
    for key in ("by_account", "by_agent", "by_ai_app"):
        for row in cost[key]:
            row["name"] = row.get("account") or row.get("agent") or row.get("ai_app") or _("(none)")
            row["total_text"] = format_money(row["total_cost"])
            row["ai_text"] = format_money(row["ai_cost"])
            row["platform_text"] = format_money(row["platform_cost"])
            row["per_conversation_text"] = format_money(row["cost_per_conversation"])
            row["per_answer_text"] = format_money(row["cost_per_ai_answer"], places=4)
    return {
        "cards": cards,
        "activity_chart": line_chart(
            overview["series"],
            [
                ("inbound_messages", _("Customer messages"), COLORS["inbound"]),
                ("ai_messages", _("AI messages"), COLORS["ai"]),
                ("agent_messages", _("Agent messages"), COLORS["agent"]),
                ("handoffs", _("Handoffs"), COLORS["handoffs"]),
                ("conversations_resolved", _("Resolved"), COLORS["resolved"]),
            ],
        ),
        "handoff_chart": bar_chart(
            [labels[k] for k in reasons],
            [(_("Handoffs"), list(reasons.values()), COLORS["handoffs"])],
        ),
        "handoff_rows": [(labels[k], v) for k, v in reasons.items()],
        "cost_chart": bar_chart(
            [row["day"].strftime("%m-%d") for row in cost["series"]],
            [
                (_("AI cost (¥)"), [float(r["ai_cost"]) for r in cost["series"]], COLORS["ai"]),
                (
                    _("Platform cost (¥)"),
                    [float(r["platform_cost"]) for r in cost["series"]],
                    COLORS["inbound"],
                ),
            ],
        ),
        "conversations": conversations["summary"],
        "speed": speed,
        "agents": agents["rows"],
        "accounts": accounts["rows"],
        "sop": sop,
        "cost": cost,
    }


@admin.register(DailyStat)
class ReportsAdmin(OrgScopedAdmin):
    """The reports page (the change list of the daily figures)."""

    view_roles = REPORT_ROLES
    edit_roles: tuple = ()

    def get_urls(self):
        return [
            path(
                "export/<str:name>/",
                self.admin_site.admin_view(self.export_view),
                name="reports_dailystat_export",
            ),
            *super().get_urls(),
        ]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def _filter(self, request) -> tuple[selectors.ReportFilter, bool, dict]:
        if not self.has_view_permission(request):
            raise PermissionDenied
        membership = console_membership(request)
        if membership is None:
            raise PermissionDenied
        own_only = membership.role == Role.AGENT
        params = {
            "start": _date(request.GET.get("start")),
            "end": _date(request.GET.get("end")),
            "account": _int(request.GET.get("account")),
            "agent": _int(request.GET.get("agent")),
            "ai_app": _int(request.GET.get("ai_app")),
            "label": _int(request.GET.get("label")),
        }
        span = _int(request.GET.get("span"))
        if span in SPANS and not params["start"]:
            params["end"] = local_day(membership.org, timezone.now())
            params["start"] = params["end"] - dt.timedelta(days=span - 1)
        if params["start"] and params["end"] and params["start"] > params["end"]:
            params["start"], params["end"] = params["end"], params["start"]
        try:
            f = selectors.report_filter_build(
                org=membership.org, role=membership.role, user_id=request.user.pk, **params
            )
        except ApplicationError as exc:
            raise Http404 from exc  # another organisation's id looks like a missing one
        return f, own_only, params

    def changelist_view(self, request, extra_context=None):
        f, own_only, _params = self._filter(request)
        query = request.GET.copy()
        query.pop("span", None)
        base = {k: v for k, v in query.items() if k not in ("start", "end")}
        context = {
            **self.admin_site.each_context(request),
            "title": _("Reports"),
            "opts": self.model._meta,
            "f": f,
            "own_only": own_only,
            "filter_options": selectors.filter_options(f, own_only=own_only),
            "spans": SPANS,
            "query": query.urlencode(),
            "base_query": "&".join(f"{k}={v}" for k, v in base.items()),
            "export_url": reverse("admin:reports_dailystat_export", args=["__name__"]),
            **page_context(f, own_only=own_only),
        }
        return TemplateResponse(request, "admin/reports/index.html", context)

    def export_view(self, request, name: str):
        if name not in selectors.REPORTS:
            raise Http404
        f, _own_only, _params = self._filter(request)
        data = selectors.report(name, f)
        response = HttpResponse(
            exports.report_csv(name, data), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = (
            f'attachment; filename="report-{name}-{f.start}_{f.end}.csv"'
        )
        return response
