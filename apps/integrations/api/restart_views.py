"""``POST /api/v1/integrations/services/restart`` (admins, owners): apps/integrations/restart.py."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from apps.core.api.views import OrgScopedAPIView
from apps.integrations.restart import services_restart
from apps.orgs.models import Role


class RestartRequestSerializer(serializers.Serializer):
    connection_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    ai_app_id = serializers.IntegerField(required=False, min_value=1, max_value=2**63 - 1)


class RestartOutcomeSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["connection", "ai_app"])
    id = serializers.IntegerField()
    name = serializers.CharField()
    service = serializers.CharField()
    ok = serializers.BooleanField()
    steps = serializers.ListField(child=serializers.CharField())
    detail = serializers.CharField(allow_blank=True)
    latency_ms = serializers.IntegerField(allow_null=True)


class RestartResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="Every restarted service works.")
    results = RestartOutcomeSerializer(many=True)


class ServicesRestartView(OrgScopedAPIView):
    """Restart one connection (``connection_id``), one AI app (``ai_app_id``) or, with neither,
    every enabled integration of the organisation: re-register the callback, reset cached
    state and the AI app's circuit breaker, check it live, and answer the outcome of each."""

    read_role = Role.ADMIN
    write_role = Role.ADMIN

    @extend_schema(
        request=RestartRequestSerializer,
        responses={
            200: RestartResultSerializer,
            400: OpenApiResponse(description="Both a connection and an AI app were given"),
            403: OpenApiResponse(description="Only admins and owners restart integrations"),
            404: OpenApiResponse(description="No such connection or AI app in the organisation"),
        },
        summary="Restart integrations",
    )
    def post(self, request):
        query = RestartRequestSerializer(data=request.data)
        query.is_valid(raise_exception=True)
        outcomes = services_restart(org=request.org, actor=request.user, **query.validated_data)
        payload = {"ok": all(o.ok for o in outcomes), "results": [vars(o) for o in outcomes]}
        return Response(RestartResultSerializer(payload).data)
