from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from apps.core.api.views import OrgScopedAPIView
from apps.orgs.models import Role
from apps.reports import exports, selectors
from apps.reports.api import serializers as s


class _ReportView(OrgScopedAPIView):
    """Agents get their own figures; managers and above, and viewers (read-only members), the
    organisation's."""

    read_role = Role.VIEWER
    report: str = ""

    def report_data(self, request) -> dict:
        query = s.ReportQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        v = query.validated_data
        f = selectors.report_filter_build(
            org=request.org,
            role=request.membership.role,
            user_id=request.user.pk,
            start=v.get("start"),
            end=v.get("end"),
            account=v.get("account"),
            agent=v.get("agent"),
            ai_app=v.get("ai_app"),
            label=v.get("label"),
        )
        data = selectors.report(self.report, f)
        data["range"] = {
            "start": f.start,
            "end": f.end,
            "timezone": f.org.timezone,
            "account": f.account_id,
            "agent": f.agent_id,
            "ai_app": f.ai_app_id,
            "label": f.label_id,
        }
        return data


def _views(name: str, serializer, doc: str):
    class View(_ReportView):
        report = name

        @extend_schema(
            operation_id=f"reports_{name}",
            parameters=[s.ReportQuerySerializer],
            responses=serializer,
            description=doc,
        )
        def get(self, request):
            return Response(serializer(self.report_data(request)).data)

    class Export(_ReportView):
        report = name

        @extend_schema(
            operation_id=f"reports_{name}_export",
            parameters=[s.ReportQuerySerializer],
            responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV")},
            description=f"{doc} CSV of the main table.",
        )
        def get(self, request):
            data = self.report_data(request)
            response = HttpResponse(
                exports.report_csv(name, data), content_type="text/csv; charset=utf-8"
            )
            stamp = f"{data['range']['start']}_{data['range']['end']}"
            response["Content-Disposition"] = f'attachment; filename="report-{name}-{stamp}.csv"'
            return response

    View.__name__ = f"{name.title()}ReportView"
    Export.__name__ = f"{name.title()}ReportExportView"
    View.__qualname__, Export.__qualname__ = View.__name__, Export.__name__
    return View, Export


OverviewReportView, OverviewReportExportView = _views(
    "overview", s.ReportOverviewSerializer, "Key figures and a daily series."
)
ConversationsReportView, ConversationsReportExportView = _views(
    "conversations",
    s.ReportConversationsSerializer,
    "Conversations, AI answers, handoffs by reason, drafts and the speed percentiles.",
)
AgentsReportView, AgentsReportExportView = _views(
    "agents", s.ReportAgentsSerializer, "One row per agent."
)
AccountsReportView, AccountsReportExportView = _views(
    "accounts", s.ReportAccountsSerializer, "One row per WeChat account."
)
SopReportView, SopReportExportView = _views(
    "sop", s.ReportSopSerializer, "SOP deliveries per plan step and the reply rate within 24 h."
)
CostReportView, CostReportExportView = _views(
    "cost", s.ReportCostSerializer, "AI and platform cost per day, account, agent and AI app."
)
