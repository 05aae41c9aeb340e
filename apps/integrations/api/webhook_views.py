"""The platforms' webhook endpoints (keyed by the connection's secret; no user auth, no CSRF).

Kept lean on purpose: one indexed connection lookup and one insert before answering 200; all
parsing happens in the worker (``apps.integrations.webhooks``).
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.integrations import webhooks
from apps.integrations.models import PlatformConnection


def _error(status: int, code: str, message: str) -> Response:
    return Response({"error": {"code": code, "message": message}}, status=status)


class _WebhookView(APIView):
    provider: str = ""
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes: list = []
    parser_classes: list = []  # the body is read raw, bounded, below

    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="Stored (or duplicate / ping)"),
            400: OpenApiResponse(description="Not JSON / not the platform's shape (recorded)"),
            404: OpenApiResponse(description="Unknown secret"),
            413: OpenApiResponse(description="Body over WEBHOOK_MAX_BODY_BYTES"),
        },
        auth=[],
    )
    def post(self, request, secret: str):
        connection = webhooks.connection_for_secret(provider=self.provider, secret=secret)
        if connection is None:
            return _error(404, "not_found", _("Unknown webhook URL."))
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > limit:
            return _error(413, "too_large", _("The body is larger than the limit."))
        body = request._request.read(limit + 1)
        if len(body) > limit:
            return _error(413, "too_large", _("The body is larger than the limit."))
        result = webhooks.webhook_receive(connection=connection, body=body)
        return Response(result.body, status=result.status)


class GeWeWebhookView(_WebhookView):
    provider = PlatformConnection.Provider.GEWE


class ECloudCallbackView(_WebhookView):
    provider = PlatformConnection.Provider.ECLOUD


def bench_bare_view(request):
    """Benchmarks only (``BENCH_BARE_ENDPOINT``): a bare Django JSON endpoint, the baseline the
    webhook's throughput is compared with (reads and parses the body, no database)."""
    import json

    from django.http import JsonResponse

    try:
        json.loads(request.body or b"{}")
    except ValueError:
        return JsonResponse({"error": "bad json"}, status=400)
    return JsonResponse({"ok": True})
