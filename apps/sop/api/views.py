from __future__ import annotations

import django_filters
from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.decorators import action
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
from rest_framework.response import Response

from apps.billing.api.views import CSVRenderer
from apps.core.api.views import OrgScopedReadOnlyViewSet, OrgScopedViewSet
from apps.core.exceptions import NotFoundError
from apps.orgs.models import Role
from apps.sop import selectors, services
from apps.sop.api.serializers import (
    DryRunItemSerializer,
    DryRunRequestSerializer,
    EstimateSerializer,
    ProgressSerializer,
    SopDeliverySerializer,
    SopPlanSerializer,
)
from apps.sop.models import SopDelivery, SopPlan


class SopPlanFilter(django_filters.FilterSet):
    class Meta:
        model = SopPlan
        fields = ["status", "trigger", "target_type"]


class SopPlanViewSet(OrgScopedViewSet):
    """SOP plans with nested steps; life cycle actions, dry run, estimate and progress.
    Managers and above write; every member reads."""

    queryset = SopPlan.objects.all()
    serializer_class = SopPlanSerializer
    write_role = Role.MANAGER
    filterset_class = SopPlanFilter
    search_fields = ["name", "description"]
    ordering_fields = ["created_at", "name", "status"]

    def scope_queryset(self, queryset):
        return selectors.plan_list(org=self.request.org).annotate(
            **selectors.progress_annotations()
        )

    def _write_args(self, data: dict) -> dict:
        data = dict(data)
        if "active_step_list" in data:
            data["steps"] = [dict(step) for step in data.pop("active_step_list")]
        return data

    def perform_create(self, serializer):
        serializer.instance = services.plan_create(
            org=self.request.org,
            user=self.request.user,
            **self._write_args(serializer.validated_data),
        )

    def perform_update(self, serializer):
        serializer.instance = services.plan_update(
            org=self.request.org,
            plan_id=serializer.instance.pk,
            **self._write_args(serializer.validated_data),
        )

    def perform_destroy(self, instance):
        services.plan_delete(org=self.request.org, plan_id=instance.pk)

    def _fresh(self, plan_id: int) -> Response:
        plan = self.get_queryset().get(pk=plan_id)
        return Response(self.get_serializer(plan).data)

    @extend_schema(request=None, responses=SopPlanSerializer)
    @action(detail=True, methods=["post"])
    def activate(self, request, pk=None):
        plan = self.get_object()
        services.plan_activate(org=request.org, plan_id=plan.pk, user=request.user)
        return self._fresh(plan.pk)

    @extend_schema(request=None, responses=SopPlanSerializer)
    @action(detail=True, methods=["post"])
    def pause(self, request, pk=None):
        plan = self.get_object()
        services.plan_pause(org=request.org, plan_id=plan.pk)
        return self._fresh(plan.pk)

    @extend_schema(request=None, responses=SopPlanSerializer)
    @action(detail=True, methods=["post"])
    def resume(self, request, pk=None):
        plan = self.get_object()
        services.plan_resume(org=request.org, plan_id=plan.pk)
        return self._fresh(plan.pk)

    @extend_schema(request=None, responses=SopPlanSerializer)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        plan = self.get_object()
        services.plan_cancel(org=request.org, plan_id=plan.pk)
        return self._fresh(plan.pk)

    @extend_schema(request=DryRunRequestSerializer, responses=DryRunItemSerializer(many=True))
    # Not a list view: without filters and pagination the schema says what it answers (a plain
    # list), not a paginated object.
    @action(
        detail=True,
        methods=["post"],
        url_path="dry-run",
        filter_backends=[],
        pagination_class=None,
    )
    def dry_run(self, request, pk=None):
        plan = self.get_object()
        body = DryRunRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        items = services.plan_dry_run(
            org=request.org, plan_id=plan.pk, limit=body.validated_data["limit"]
        )
        return Response(DryRunItemSerializer(items, many=True).data)

    @extend_schema(responses=EstimateSerializer)
    @action(detail=True, methods=["get"])
    def estimate(self, request, pk=None):
        plan = self.get_object()
        return Response(
            EstimateSerializer(services.plan_estimate(org=request.org, plan_id=plan.pk)).data
        )

    @extend_schema(responses=ProgressSerializer)
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        plan = self.get_object()
        return Response(ProgressSerializer(selectors.plan_progress(plan=plan)).data)


class SopDeliveryFilter(django_filters.FilterSet):
    due_after = django_filters.IsoDateTimeFilter(field_name="due_at", lookup_expr="gte")
    due_before = django_filters.IsoDateTimeFilter(field_name="due_at", lookup_expr="lt")

    class Meta:
        model = SopDelivery
        fields = ["status", "step", "contact", "account", "run", "reason"]


class SopDeliveryViewSet(OrgScopedReadOnlyViewSet):
    """The deliveries of one plan (filters; CSV with ``?format=csv`` or ``export/``)."""

    queryset = SopDelivery.objects.all()
    serializer_class = SopDeliverySerializer
    filterset_class = SopDeliveryFilter
    renderer_classes = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]
    search_fields = ["contact__wxid", "contact__nickname", "contact__remark"]
    ordering_fields = ["due_at", "status", "sent_at"]

    def scope_queryset(self, queryset):
        plan_id = self.kwargs.get("plan_pk")
        if selectors.plan_get(org=self.request.org, plan_id=plan_id) is None:
            raise NotFoundError(_("SOP plan not found."))
        return selectors.delivery_list(org=self.request.org, plan_id=plan_id)

    def _csv(self) -> HttpResponse:
        queryset = self.filter_queryset(self.get_queryset())
        response = HttpResponse(
            services.deliveries_csv(queryset=queryset), content_type="text/csv; charset=utf-8"
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M")
        name = f"sop-plan-{self.kwargs.get('plan_pk')}-deliveries-{stamp}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    @extend_schema(
        responses={
            200: SopDeliverySerializer(many=True),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV export"),
        }
    )
    def list(self, request, *args, **kwargs):
        if request.accepted_renderer.format == "csv":
            return self._csv()
        return super().list(request, *args, **kwargs)

    @extend_schema(
        responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")},
        filters=True,
    )
    @action(detail=False, methods=["get"], renderer_classes=[CSVRenderer, JSONRenderer])
    def export(self, request, *args, **kwargs):
        return self._csv()
