"""The platforms' webhook endpoints (keyed by the connection's secret; no user auth, no CSRF).

Kept lean on purpose: one indexed connection lookup and one insert before answering 200; all
parsing happens in the worker (``apps.integrations.webhooks``).
"""

from __future__ import annotations

import time

from django.conf import settings
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.core.redis import get_redis, redis_key
from apps.core.stages import stage_observe
from apps.integrations import webhooks
from apps.integrations.models import PlatformConnection


def _error(status: int, code: str, message: str) -> Response:
    return Response({"error": {"code": code, "message": message}}, status=status)


def _over_rate(connection: PlatformConnection) -> int:
    """Seconds to wait when the connection is over ``WEBHOOK_RATE_LIMIT_PER_MINUTE`` (fixed
    one-minute windows in Redis, one round trip), else 0. The limit sits far above any real
    account's traffic (12,000 a minute by default, 200 a second on one connection); it stops a
    leaked webhook URL from flooding the inbox, never a platform's burst. A refused event is
    not stored: the platform retries it. A Redis outage admits everything."""
    limit = settings.WEBHOOK_RATE_LIMIT_PER_MINUTE
    if limit <= 0:
        return 0
    window = int(time.time() // 60)
    key = redis_key("webhook-rate", connection.pk, window)
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, 120)
        count = pipe.execute()[0]
    except Exception:  # noqa: BLE001 - never refuse a platform because Redis is down
        return 0
    return 0 if count <= limit else max(1, (window + 1) * 60 - int(time.time()))


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
            429: OpenApiResponse(description="Over WEBHOOK_RATE_LIMIT_PER_MINUTE (Retry-After)"),
        },
        auth=[],
    )
    def post(self, request, secret: str):
        started = time.monotonic()
        connection = webhooks.connection_for_secret(provider=self.provider, secret=secret)
        if connection is None:
            return _error(404, "not_found", _("Unknown webhook URL."))
        wait = _over_rate(connection)
        if wait:
            response = _error(429, "throttled", _("Too many webhook events; retry later."))
            response["Retry-After"] = str(wait)
            return response
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
        if result.event_id and result.status == 200:
            stage_observe("ingest", time.monotonic() - started)
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
