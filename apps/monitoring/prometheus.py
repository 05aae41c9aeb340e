"""``/metrics``: the Prometheus exposition, correct across many Daphne/Celery processes.

Nothing is counted in process memory. HTTP requests are counted in Redis by the middleware
(one pipelined round trip per request: the request counter, one histogram bucket, the latency
sum); everything else is computed from PostgreSQL and Redis when Prometheus scrapes, by a custom
collector. Database-derived series are gauges over the last 24 hours (``*_24h``) because the
source tables are pruned, which would make counters go backwards.

Access: ``Authorization: Bearer <METRICS_TOKEN>`` or a client address in ``METRICS_ALLOWED_IPS``
(addresses or CIDR networks). With neither configured, the endpoint answers 403.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import Avg, Count, Sum
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from apps.billing.models import Budget
from apps.billing.selectors import budget_status_list
from apps.core.redis import get_redis, redis_key
from apps.orgs.models import Organization

logger = logging.getLogger(__name__)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_REQUESTS = ("monitoring", "prom", "http-requests")
_BUCKETS = ("monitoring", "prom", "http-buckets")
_SUMS = ("monitoring", "prom", "http-sums")
_SEP = "\x1f"


def record_request(view: str, status: int, seconds: float) -> None:
    """Count one HTTP request (never raises into the request)."""
    index = next((i for i, le in enumerate(LATENCY_BUCKETS) if seconds <= le), len(LATENCY_BUCKETS))
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.hincrby(redis_key(*_REQUESTS), f"{view}{_SEP}{status}", 1)
        pipe.hincrby(redis_key(*_BUCKETS), f"{view}{_SEP}{index}", 1)
        pipe.hincrbyfloat(redis_key(*_SUMS), view, seconds)
        pipe.execute()
    except Exception:  # noqa: BLE001 - metrics must never break a request.
        logger.debug("could not record request metrics", exc_info=True)


class PrometheusRequestMiddleware:
    """Counts requests by resolved view name and status, with a latency histogram."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.monotonic()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = (match.view_name or match._func_path) if match else "unmatched"
        if view != "metrics":
            record_request(view, response.status_code, time.monotonic() - started)
        return response


def _decode(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class ProjectCollector:
    """Computes every series at scrape time from Redis and the database."""

    def collect(self):
        yield from self._http()
        yield from self._safe(self._webhooks)
        yield from self._safe(self._outbound)
        yield from self._safe(self._ai_calls)
        yield from self._safe(self._usage)
        yield from self._safe(self._websockets)
        yield from self._safe(self._queues)
        yield from self._safe(self._alerts)
        yield from self._safe(self._budgets)
        yield from self._safe(self._stages)

    def _safe(self, producer):
        try:
            yield from producer()
        except Exception:  # noqa: BLE001 - one failing source must not blank the scrape.
            logger.warning("metrics source %s failed", producer.__name__, exc_info=True)

    def _http(self):
        client = get_redis()
        requests = CounterMetricFamily(
            "sa_http_requests", "HTTP requests by view and status.", labels=["view", "status"]
        )
        for field, value in (client.hgetall(redis_key(*_REQUESTS)) or {}).items():
            view, _sep, status = _decode(field).partition(_SEP)
            requests.add_metric([view, status], float(value))
        yield requests
        buckets: dict[str, list[float]] = {}
        for field, value in (client.hgetall(redis_key(*_BUCKETS)) or {}).items():
            view, _sep, index = _decode(field).partition(_SEP)
            buckets.setdefault(view, [0.0] * (len(LATENCY_BUCKETS) + 1))[int(index)] += float(value)
        sums = {_decode(k): float(v) for k, v in (client.hgetall(redis_key(*_SUMS)) or {}).items()}
        histogram = HistogramMetricFamily(
            "sa_http_request_duration_seconds", "HTTP request latency by view.", labels=["view"]
        )
        for view, counts in sorted(buckets.items()):
            cumulative, running = [], 0.0
            for le, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                running += count
                cumulative.append((le, running))
            histogram.add_metric([view], cumulative, sum_value=sums.get(view, 0.0))
        yield histogram

    def _since(self):
        return timezone.now() - timedelta(hours=24)

    def _webhooks(self):
        from apps.integrations.models import WebhookEvent

        gauge = GaugeMetricFamily(
            "sa_webhook_events_24h",
            "Webhook events received in the last 24 hours by provider and status.",
            labels=["provider", "status"],
        )
        rows = (
            WebhookEvent.objects.filter(created_at__gte=self._since())
            .values("provider", "status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            gauge.add_metric([row["provider"], row["status"]], row["n"])
        yield gauge

    def _outbound(self):
        from apps.conversations.models import Message

        gauge = GaugeMetricFamily(
            "sa_outbound_messages_24h",
            "Outbound WeChat messages of the last 24 hours by status.",
            labels=["status"],
        )
        rows = (
            Message.objects.filter(
                direction=Message.Direction.OUTBOUND, created_at__gte=self._since()
            )
            .values("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            gauge.add_metric([row["status"]], row["n"])
        yield gauge

    def _ai_calls(self):
        from apps.integrations.models import IntegrationCall

        calls = GaugeMetricFamily(
            "sa_ai_calls_24h",
            "AI call attempts of the last 24 hours by provider, model and outcome.",
            labels=["provider", "model", "outcome"],
        )
        latency = GaugeMetricFamily(
            "sa_ai_call_latency_avg_seconds_24h",
            "Average AI call latency of the last 24 hours by provider and model.",
            labels=["provider", "model"],
        )
        rows = (
            IntegrationCall.objects.filter(
                service__in=list(IntegrationCall.AI_SERVICES), at__gte=self._since()
            )
            .values("service", "ai_app__model", "ok")
            .annotate(n=Count("id"), avg=Avg("latency_ms"))
            .order_by()
        )
        weighted: dict[tuple[str, str], list[float]] = {}
        for row in rows:
            model = row["ai_app__model"] or ""
            calls.add_metric([row["service"], model, "ok" if row["ok"] else "error"], row["n"])
            acc = weighted.setdefault((row["service"], model), [0.0, 0.0])
            acc[0] += float(row["avg"] or 0) * row["n"]
            acc[1] += row["n"]
        for (provider, model), (total_ms, n) in sorted(weighted.items()):
            latency.add_metric([provider, model], total_ms / n / 1000.0 if n else 0.0)
        yield calls
        yield latency

    def _usage(self):
        from apps.billing.models import CostLedger

        tokens = GaugeMetricFamily(
            "sa_ai_tokens_24h",
            "Tokens metered in the last 24 hours by provider, model and direction.",
            labels=["provider", "model", "direction"],
        )
        cost = GaugeMetricFamily(
            "sa_cost_24h",
            "Cost metered in the last 24 hours by provider, model and currency.",
            labels=["provider", "model", "currency"],
        )
        rows = (
            CostLedger.objects.filter(created_at__gte=self._since())
            .values("provider", "model", "currency")
            .annotate(tin=Sum("input_tokens"), tout=Sum("output_tokens"), cost=Sum("cost"))
            .order_by()
        )
        for row in rows:
            tokens.add_metric([row["provider"], row["model"], "input"], row["tin"] or 0)
            tokens.add_metric([row["provider"], row["model"], "output"], row["tout"] or 0)
            cost.add_metric(
                [row["provider"], row["model"], row["currency"]], float(row["cost"] or 0)
            )
        yield tokens
        yield cost

    def _websockets(self):
        from apps.core import ws_registry

        gauge = GaugeMetricFamily(
            "sa_websocket_connections", "Live WebSocket connections (all processes)."
        )
        gauge.add_metric(
            [],
            sum(
                len(ws_registry.connections_for_org(org_id))
                for org_id in ws_registry.orgs_with_connections()
            ),
        )
        yield gauge

    def _queues(self):
        import redis as redis_lib

        gauge = GaugeMetricFamily(
            "sa_celery_queue_length", "Tasks waiting in each Celery queue.", labels=["queue"]
        )
        broker = settings.CELERY_BROKER_URL or ""
        if broker.startswith(("redis://", "rediss://", "unix://")):
            client = redis_lib.Redis.from_url(broker, socket_timeout=2)
            for queue in _queue_names():
                gauge.add_metric([queue], client.llen(queue))
        yield gauge

    def _alerts(self):
        from apps.monitoring.models import Alert

        gauge = GaugeMetricFamily(
            "sa_open_alerts",
            "Open monitoring alerts by type and severity.",
            labels=["type", "severity"],
        )
        rows = (
            Alert.objects.filter(resolved_at__isnull=True)
            .values("type", "severity")
            .annotate(n=Count("id"))
            .order_by()
        )
        for row in rows:
            gauge.add_metric([row["type"], row["severity"]], row["n"])
        yield gauge

    def _budgets(self):
        """Budget use this month in percent (the higher of money and tokens), per active
        organisation-wide budget: the dashboard's "budget use" panel and its alert rules."""
        gauge = GaugeMetricFamily(
            "sa_budget_used_percent",
            "Use of the organisation-wide monthly budget, in percent.",
            labels=["org"],
        )
        org_ids = Budget.objects.filter(scope=Budget.Scope.ORG, is_active=True).values("org_id")
        for org in Organization.objects.filter(id__in=org_ids).only("id", "slug", "timezone"):
            for status in budget_status_list(org=org):
                if status.budget.scope == Budget.Scope.ORG:
                    gauge.add_metric([org.slug], float(status.percent))
        yield gauge

    def _stages(self):
        """Where a customer message's time goes, stage by stage (apps.core.stages)."""
        from apps.core.stages import STAGES, stage_histograms

        histogram = HistogramMetricFamily(
            "sa_loop_stage_duration_seconds",
            "Time of each core-loop stage of a customer message (webhook to platform send).",
            labels=["stage"],
        )
        histograms = stage_histograms()
        order = {stage: i for i, stage in enumerate(STAGES)}
        for stage in sorted(histograms, key=lambda s: (order.get(s, len(order)), s)):
            buckets, total = histograms[stage]
            histogram.add_metric([stage], buckets, sum_value=total)
        yield histogram


def _queue_names() -> list[str]:
    names = {getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", None) or "celery"}
    for route in (getattr(settings, "CELERY_TASK_ROUTES", None) or {}).values():
        if isinstance(route, dict) and route.get("queue"):
            names.add(route["queue"])
    return sorted(names)


def render() -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ProjectCollector())
    # The serving process itself: RSS, CPU seconds, open file descriptors (process_* series).
    ProcessCollector(registry=registry)
    return generate_latest(registry)


def _client_ip(request) -> str:
    return request.META.get("REMOTE_ADDR", "")


def access_allowed(request) -> bool:
    token = settings.METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if token and header.startswith("Bearer "):
        if hmac.compare_digest(header[7:].strip().encode(), token.encode()):
            return True
    allowed = settings.METRICS_ALLOWED_IPS
    if allowed:
        try:
            address = ipaddress.ip_address(_client_ip(request))
        except ValueError:
            return False
        for entry in allowed:
            try:
                if address in ipaddress.ip_network(entry.strip(), strict=False):
                    return True
            except ValueError:
                logger.warning("METRICS_ALLOWED_IPS entry %r is not an address", entry)
    return False


@never_cache
@require_GET
def metrics_view(request):
    if not access_allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(render(), content_type=CONTENT_TYPE_LATEST)
