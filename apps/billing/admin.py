"""Admin of the billing app: prices, the (read-only) ledger, budgets, reservations, alerts, and
a usage page with a chart of this month's daily cost against the budget."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.translation import gettext_lazy as _

from apps.accounts.models import User
from apps.billing import selectors, services
from apps.billing.models import Budget, BudgetAlert, CostLedger, Kind, ModelPrice, Reservation
from apps.billing.periods import current_period, local_date, period_for_date
from apps.core.admin import OrgScopedAdmin, admin_org_ids
from apps.core.console import console_membership
from apps.core.money import format_money
from apps.orgs.models import Organization


class _ReadOnlyAdmin(OrgScopedAdmin):
    """Rows written only by services: viewable, never added, changed or deleted by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


def _narrow_user_choices(request, db_field, field):
    """Staff who are not superusers choose only among members of organisations they manage."""
    if field is not None and db_field.name == "user" and not request.user.is_superuser:
        field.queryset = User.objects.filter(
            memberships__org_id__in=admin_org_ids(request.user)
        ).distinct()
    return field


@admin.register(ModelPrice)
class ModelPriceAdmin(OrgScopedAdmin):
    """Global prices are platform internals (superusers); admins manage their organisation's
    overrides, the other roles read them."""

    list_display = [
        "provider",
        "model",
        "org",
        "input_price_per_1k",
        "output_price_per_1k",
        "unit_price",
        "currency",
        "valid_from",
    ]
    list_filter = ["provider", "currency", ("org", admin.EmptyFieldListFilter)]
    search_fields = ["provider", "model", "note"]
    date_hierarchy = "valid_from"

    def get_queryset(self, request):
        queryset = admin.ModelAdmin.get_queryset(self, request).select_related("org")
        if request.user.is_superuser:
            return queryset
        return queryset.filter(org_id__in=self.org_ids(request))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change=change, **kwargs)
        if not request.user.is_superuser and "org" in form.base_fields:
            form.base_fields["org"].required = True  # staff cannot create global prices
        return form

    def _allowed(self, request, obj, roles=None) -> bool:
        if obj is not None and obj.org_id is None:
            return request.user.is_superuser
        return super()._allowed(request, obj, roles)


@admin.register(CostLedger)
class CostLedgerAdmin(_ReadOnlyAdmin):
    list_display = [
        "created_at",
        "org",
        "request_id",
        "kind",
        "provider_name",
        "model",
        "input_tokens",
        "output_tokens",
        "units",
        "cost_display",
        "user",
        "account_name",
    ]
    list_filter = [
        "kind",
        "provider",
        "currency",
        "usage_source",
        ("price", admin.EmptyFieldListFilter),
    ]
    search_fields = ["request_id", "model"]
    date_hierarchy = "created_at"
    list_select_related = ["org", "user"]
    show_full_result_count = False  # the ledger is large: skip the unfiltered COUNT(*)
    change_list_template = "admin/billing/costledger/change_list.html"

    @admin.display(description=_("provider"), ordering="provider")
    def provider_name(self, obj):
        return provider_label(obj.provider)

    @admin.display(description=_("cost"), ordering="cost")
    def cost_display(self, obj):
        return format_money(obj.cost, obj.currency, 4)

    @admin.display(description=_("WeChat account"))
    def account_name(self, obj):
        return account_name(obj.org_id, obj.wechat_account_id)

    def get_urls(self):
        return [
            path(
                "usage/",
                self.admin_site.admin_view(self.usage_view),
                name="billing_costledger_usage",
            ),
            *super().get_urls(),
        ]

    def usage_view(self, request):
        """Usage of one organisation in one month: chart, budgets and breakdowns."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.user.is_superuser:
            orgs = list(Organization.objects.order_by("name"))
        else:
            orgs = list(Organization.objects.filter(id__in=admin_org_ids(request.user)))
        if not orgs:
            raise PermissionDenied
        active = console_membership(request)
        org = next((o for o in orgs if active and o.id == active.org_id), orgs[0])
        requested = request.GET.get("org")
        if requested:
            org = next((o for o in orgs if str(o.id) == requested), None)
            if org is None:
                raise Http404  # another organisation's page looks like a missing one
        period = current_period(org)
        month = request.GET.get("month")
        if month:
            try:
                period = period_for_date(org, dt.datetime.strptime(month, "%Y-%m").date())
            except ValueError:
                messages.error(request, _("Give the month as YYYY-MM."))
        budgets = selectors.budget_status_list(org=org)
        org_budget = next((s for s in budgets if s.budget.scope == Budget.Scope.ORG), None)
        currency = org_budget.budget.currency if org_budget else "CNY"
        series = selectors.daily_cost_series(org=org, period=period, currency=currency)
        report = selectors.usage_report(org=org, start=period.start_date, end=period.last_date)
        _label_report(report, org=org)
        limit = org_budget.budget.money_limit if org_budget else None
        context = {
            **self.admin_site.each_context(request),
            "title": _("Usage"),
            "opts": self.model._meta,
            "orgs": orgs,
            "org": org,
            "period": period,
            "currency": currency,
            "budgets": budgets,
            "report": report,
            "chart": usage_chart(series, limit=limit, until=local_date(org)),
            "ledger_url": reverse("admin:billing_costledger_changelist"),
        }
        return TemplateResponse(request, "admin/billing/usage.html", context)


def _label_report(report, *, org) -> None:
    """Rows of the usage report read by people: account names (never ids), the provider's
    and the kind's labels instead of their codes."""
    from django.apps import apps

    account_model = apps.get_model("wechat_accounts", "WeChatAccount")  # a higher layer
    ids = {r["wechat_account_id"] for r in report.by_account if r.get("wechat_account_id")}
    names = dict(account_model.objects.filter(org=org, id__in=ids).values_list("id", "name"))
    for row in report.by_account:
        account_id = row.get("wechat_account_id")
        row["account_name"] = (
            names.get(account_id) or _("Deleted account") if account_id else _("(no account)")
        )
    for row in report.by_model:
        row["provider_label"] = provider_label(row.get("provider", ""))
        row["kind_label"] = Kind(row["kind"]).label if row.get("kind") in Kind.values else ""


def account_name(org_id: int, account_id: int | None) -> str:
    """A WeChat account's name, never its id (a lookup per row: list pages are short)."""
    if not account_id:
        return "—"
    from django.apps import apps

    model = apps.get_model("wechat_accounts", "WeChatAccount")
    name = model.objects.filter(org_id=org_id, id=account_id).values_list("name", flat=True).first()
    return name or str(_("Deleted account"))


def provider_label(code: str) -> str:
    from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection

    for choices in (IntegrationCall.Service, AIApp.Provider, PlatformConnection.Provider):
        if code in choices.values:
            return str(choices(code).label)
    return code


def usage_chart(
    series: list[tuple[dt.date, Decimal]],
    *,
    limit: Decimal | None,
    until: dt.date | None = None,
    width: int = 760,
    height: int = 260,
) -> dict:
    """Geometry of the inline SVG: daily cost bars (right axis), cumulative cost and the monthly
    budget line (left axis; the cumulative line stops at ``until``, today). Computed here so
    the template only places shapes."""
    left, right, top, bottom = 64, 64, 16, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    days = len(series) or 1
    daily_max = max((cost for _day, cost in series), default=Decimal(0)) or Decimal(1)
    cumulative, running = [], Decimal(0)
    for _day, cost in series:
        running += cost
        cumulative.append(running)
    cum_max = max([running, limit or Decimal(0)]) * Decimal("1.1") or Decimal(1)
    slot = plot_w / days

    def y_for(value: Decimal, scale: Decimal) -> float:
        return round(top + plot_h - float(value / scale) * plot_h, 1)

    bars, points, labels = [], [], []
    for i, (day, cost) in enumerate(series):
        x = left + i * slot
        bar_top = y_for(cost, daily_max)
        bars.append(
            {
                "x": round(x + slot * 0.15, 1),
                "y": bar_top,
                "w": round(slot * 0.7, 1),
                "h": round(top + plot_h - bar_top, 1),
                "day": day,
                "cost": cost,
            }
        )
        if until is None or day <= until:  # the cumulative line stops today
            points.append(f"{round(x + slot / 2, 1)},{y_for(cumulative[i], cum_max)}")
        if i % 5 == 0 or i == days - 1:
            labels.append({"x": round(x + slot / 2, 1), "text": day.strftime("%d")})
    ticks = [
        {
            "y": y_for(cum_max * Decimal(k) / 4, cum_max),
            "left": (cum_max * Decimal(k) / 4).quantize(Decimal("0.01")),
            "right": (daily_max * Decimal(k) / 4).quantize(Decimal("0.0001")),
        }
        for k in range(5)
    ]
    return {
        "width": width,
        "height": height,
        "left": left,
        "right_x": width - right,
        "top": top,
        "bottom_y": top + plot_h,
        "label_y": height - 8,
        "bars": bars,
        "points": " ".join(points),
        "labels": labels,
        "ticks": ticks,
        "budget_y": y_for(limit, cum_max) if limit is not None else None,
        "limit": limit,
        "total": running,
    }


@admin.register(Budget)
class BudgetAdmin(OrgScopedAdmin):
    list_display = [
        "__str__",
        "org",
        "scope",
        "user",
        "account_name",
        "limit_display",
        "token_limit",
        "action",
        "is_active",
    ]
    list_filter = ["scope", "action", "is_active", "currency"]
    search_fields = ["name", "user__email"]
    autocomplete_fields = ["user"]

    @admin.display(description=_("WeChat account"))
    def account_name(self, obj):
        return account_name(obj.org_id, obj.wechat_account_id) if obj.wechat_account_id else "—"

    @admin.display(description=_("money limit"), ordering="money_limit")
    def limit_display(self, obj):
        return format_money(obj.money_limit, obj.currency, 2)

    def get_readonly_fields(self, request, obj=None):
        return ["org"] if obj is not None else []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        field = super().formfield_for_foreignkey(db_field, request, **kwargs)
        return _narrow_user_choices(request, db_field, field)

    def save_model(self, request, obj, form, change):
        fields = {name: getattr(obj, name) for name in services.BUDGET_FIELDS}
        if change:
            changed = {n: fields[n] for n in form.changed_data if n in services.BUDGET_FIELDS}
            services.budget_update(org=obj.org, budget_id=obj.pk, **changed)
        else:
            obj.pk = services.budget_create(org=obj.org, **fields).pk

    def delete_model(self, request, obj):
        services.budget_delete(org=obj.org, budget_id=obj.pk)


@admin.register(Reservation)
class ReservationAdmin(_ReadOnlyAdmin):
    superuser_only = True  # budget bookkeeping of the platform
    list_display = [
        "created_at",
        "org",
        "request_id",
        "status",
        "model",
        "estimated_cost",
        "currency",
        "expires_at",
        "finished_at",
    ]
    list_filter = ["status", "kind", "provider"]
    search_fields = ["request_id", "model"]
    date_hierarchy = "created_at"
    list_select_related = ["org"]
    actions = ["release_selected"]

    @admin.action(description=_("Release the selected held reservations"))
    def release_selected(self, request, queryset):
        released = 0
        for reservation in queryset.filter(status=Reservation.Status.HELD):
            services.release(reservation=reservation)
            released += 1
        self.message_user(request, _("%(n)d reservation(s) released.") % {"n": released})


@admin.register(BudgetAlert)
class BudgetAlertAdmin(_ReadOnlyAdmin):
    list_display = [
        "created_at",
        "org",
        "budget",
        "period",
        "threshold",
        "metric",
        "percent",
        "blocked",
    ]
    list_filter = ["threshold", "blocked", "period"]
    search_fields = ["budget__name", "period"]
    list_select_related = ["org", "budget"]
