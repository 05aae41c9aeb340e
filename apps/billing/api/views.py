from __future__ import annotations

import datetime as dt

import django_filters
from django.http import StreamingHttpResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response

from apps.billing import selectors, services
from apps.billing.api.serializers import (
    BudgetAlertSerializer,
    BudgetSerializer,
    CostLedgerSerializer,
    ModelPriceSerializer,
    UsageQuerySerializer,
    UsageSerializer,
)
from apps.billing.models import Budget, BudgetAlert, CostLedger, Kind, ModelPrice
from apps.billing.periods import current_period
from apps.core import csv_export
from apps.core.api.filters import IdFilter
from apps.core.api.pagination import CursorPagination
from apps.core.api.views import (
    OrgScopedAPIView,
    OrgScopedReadOnlyViewSet,
    OrgScopedViewSet,
)
from apps.orgs.models import Role


# --- Prices ---------------------------------------------------------------------------------------
class ModelPriceFilter(django_filters.FilterSet):
    scope = django_filters.ChoiceFilter(
        choices=[("global", _("Global")), ("org", _("Organization"))], method="filter_scope"
    )

    class Meta:
        model = ModelPrice
        fields = ["provider", "model", "currency", "scope"]

    def filter_scope(self, queryset, name, value):
        return queryset.filter(org__isnull=(value == "global"))


class ModelPriceViewSet(OrgScopedViewSet):
    """Prices: the global defaults and the organisation's own overrides (read by every member;
    owners and admins add, change and delete the organisation's prices; global rows are
    read-only here and answer 403 to writes)."""

    queryset = ModelPrice.objects.all()
    serializer_class = ModelPriceSerializer
    write_role = Role.ADMIN
    filterset_class = ModelPriceFilter
    search_fields = ["provider", "model", "note"]
    ordering_fields = ["provider", "model", "valid_from"]

    include_platform_rows = True  # global prices (org NULL) are read by every member

    def scope_queryset(self, queryset):
        return selectors.price_list(org=self.request.org)

    def perform_create(self, serializer):
        serializer.instance = services.price_create(
            org=self.request.org, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.price_update(
            org=self.request.org, price_id=serializer.instance.pk, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.price_delete(org=self.request.org, price_id=instance.pk)


# --- Ledger ---------------------------------------------------------------------------------------
class CSVRenderer(BaseRenderer):
    """Lets ``?format=csv`` through content negotiation; the ledger views stream the CSV
    themselves. Anything else rendered with it (an error body) becomes ``key,value`` rows."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        if data is None:
            return b""
        rows = data.get("error", data) if isinstance(data, dict) else {"detail": data}
        return "".join(f"{key},{value}\n" for key, value in rows.items()).encode()


class LedgerFilter(django_filters.FilterSet):
    date_from = django_filters.DateFilter(
        method="filter_date_from", label=_("From this local date (inclusive)")
    )
    date_to = django_filters.DateFilter(
        method="filter_date_to", label=_("Up to this local date (inclusive)")
    )
    created_after = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    kind = django_filters.ChoiceFilter(choices=Kind.choices)
    user = IdFilter(field_name="user_id")
    wechat_account_id = IdFilter()
    conversation_id = IdFilter()
    sop_run_id = IdFilter()

    class Meta:
        model = CostLedger
        fields = ["kind", "provider", "model", "currency", "request_id", "usage_source"]

    def _local_midnight(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=self.request.org.tzinfo)

    def filter_date_from(self, queryset, name, value):
        return queryset.filter(created_at__gte=self._local_midnight(value))

    def filter_date_to(self, queryset, name, value):
        return queryset.filter(created_at__lt=self._local_midnight(value + dt.timedelta(days=1)))


class LedgerPagination(CursorPagination):
    ordering = ("-created_at", "-id")


class _Echo:
    def write(self, value):
        return value


CSV_COLUMNS = [
    "created_at",
    "request_id",
    "kind",
    "provider",
    "model",
    "input_tokens",
    "output_tokens",
    "units",
    "cost",
    "currency",
    "provider_cost",
    "provider_currency",
    "usage_source",
    "user_id",
    "user_email",
    "wechat_account_id",
    "conversation_id",
    "sop_run_id",
]


def ledger_csv_response(queryset, *, org) -> StreamingHttpResponse:
    """Stream every row of ``queryset`` as CSV (local times of the organisation, exact costs)."""
    tz = org.tzinfo
    writer = csv_export.writer(_Echo())

    def rows():
        yield writer.writerow(CSV_COLUMNS)
        for entry in queryset.order_by("-created_at", "-id").iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    entry.created_at.astimezone(tz).isoformat(),
                    entry.request_id,
                    entry.kind,
                    entry.provider,
                    entry.model,
                    entry.input_tokens,
                    entry.output_tokens,
                    entry.units,
                    f"{entry.cost:f}",
                    entry.currency,
                    "" if entry.provider_cost is None else f"{entry.provider_cost:f}",
                    entry.provider_currency,
                    entry.usage_source,
                    entry.user_id or "",
                    entry.user.email if entry.user_id else "",
                    entry.wechat_account_id or "",
                    entry.conversation_id or "",
                    entry.sop_run_id or "",
                ]
            )

    stamp = timezone.now().astimezone(tz).strftime("%Y%m%d-%H%M")
    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="cost-ledger-{stamp}.csv"'
    return response


class CostLedgerViewSet(OrgScopedReadOnlyViewSet):
    """The cost ledger (managers and above): cursor-paginated, filterable, exportable as CSV
    with ``?format=csv`` or ``export/`` (same filters, every matching row)."""

    queryset = CostLedger.objects.select_related("user")
    serializer_class = CostLedgerSerializer
    read_role = Role.MANAGER
    filterset_class = LedgerFilter
    pagination_class = LedgerPagination
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]
    search_fields = ["request_id", "model"]
    ordering_fields: list[str] = []  # the cursor fixes the order

    @extend_schema(
        responses={
            200: CostLedgerSerializer(many=True),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV export"),
        }
    )
    def list(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            return self.export(request)
        return super().list(request, *args, **kwargs)

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")},
        filters=True,
    )
    @action(detail=False, methods=["get"], renderer_classes=[CSVRenderer, JSONRenderer])
    def export(self, request, *args, **kwargs):
        return ledger_csv_response(self.filter_queryset(self.get_queryset()), org=request.org)


# --- Budgets --------------------------------------------------------------------------------------
class BudgetFilter(django_filters.FilterSet):
    user = IdFilter(field_name="user_id")
    wechat_account_id = IdFilter()

    class Meta:
        model = Budget
        fields = ["scope", "action", "is_active", "user", "wechat_account_id"]


class BudgetAlertFilter(django_filters.FilterSet):
    budget = IdFilter(field_name="budget_id")

    class Meta:
        model = BudgetAlert
        fields = ["budget", "period", "threshold", "blocked"]


class BudgetViewSet(OrgScopedViewSet):
    """Monthly budgets and token quotas: managers read, owners and admins change."""

    queryset = Budget.objects.select_related("user")
    serializer_class = BudgetSerializer
    read_role = Role.MANAGER
    write_role = Role.ADMIN
    filterset_class = BudgetFilter
    search_fields = ["name"]
    ordering_fields = ["created_at", "scope"]

    def perform_create(self, serializer):
        serializer.instance = services.budget_create(
            org=self.request.org, **serializer.validated_data
        )

    def perform_update(self, serializer):
        serializer.instance = services.budget_update(
            org=self.request.org, budget_id=serializer.instance.pk, **serializer.validated_data
        )

    def perform_destroy(self, instance):
        services.budget_delete(org=self.request.org, budget_id=instance.pk)


class BudgetAlertViewSet(OrgScopedReadOnlyViewSet):
    """Thresholds crossed (80 %, 95 %, 100 % by default), one per budget, threshold and month."""

    queryset = BudgetAlert.objects.select_related("budget")
    serializer_class = BudgetAlertSerializer
    read_role = Role.MANAGER
    filterset_class = BudgetAlertFilter
    ordering_fields = ["created_at"]


# --- Usage ----------------------------------------------------------------------------------------
class UsageView(OrgScopedAPIView):
    """Totals and series by day, model, user and account for a local date range (default: this
    month in the organisation's time zone), with every active budget's status and the
    projected month-end. Managers and above."""

    read_role = Role.MANAGER

    @extend_schema(parameters=[UsageQuerySerializer], responses=UsageSerializer)
    def get(self, request):
        query = UsageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        org = request.org
        period = current_period(org)
        start = query.validated_data.get("start") or period.start_date
        end = query.validated_data.get("end") or period.last_date
        if start > end:
            return Response(
                {"error": {"code": "invalid", "message": str(_("The end is before the start."))}},
                status=status.HTTP_400_BAD_REQUEST,
            )
        report = selectors.usage_report(
            org=org,
            start=start,
            end=end,
            user_id=query.validated_data.get("user"),
            wechat_account_id=query.validated_data.get("wechat_account_id"),
            kind=query.validated_data.get("kind"),
        )
        data = {
            "start": start,
            "end": end,
            "timezone": org.timezone,
            "totals": report.totals,
            "by_day": report.by_day,
            "by_model": report.by_model,
            "by_user": report.by_user,
            "by_account": report.by_account,
            "budgets": selectors.budget_status_list(org=org),
        }
        return Response(UsageSerializer(data).data)
