"""Metrics of the monitoring app (reads only, every query scoped to one organisation).

Integration services (gewe, ecloud, openai, fastgpt, dify: the keys of
``apps.integrations.selectors.SERVICE_SPECS``) are measured from the call log
(``IntegrationCall``: one row per attempt) and the billing ledger (tokens, cost). WeChat
accounts and the platform's own dependencies (database, redis, celery) are measured from the
health samples. Times are in seconds and rates in percent, the seed's units.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import Q, Sum
from django.utils import timezone

from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection
from apps.integrations.selectors import SERVICE_SPECS
from apps.monitoring.models import Alert, HealthSample

WINDOWS: dict[str, int] = {"5m": 300, "1h": 3600, "24h": 86400}
ACCOUNT_SERVICE = "wechat_account"
SYSTEM_SERVICES = ("database", "redis", "celery")
INTEGRATION_SERVICES = tuple(SERVICE_SPECS)
ALL_SERVICES = (*INTEGRATION_SERVICES, ACCOUNT_SERVICE, *SYSTEM_SERVICES)
# The call log's service -> the monitored service (DashScope is an OpenAI-compatible flavour).
SERVICE_OF_CALL = {
    call_service: key for key, spec in SERVICE_SPECS.items() for call_service in spec.services
}


def service_name(service: str) -> str:
    """The service's name in the active language (people read it on pages and in alerts)."""
    from django.utils.translation import gettext

    spec = SERVICE_SPECS.get(service)
    if spec:
        return gettext(spec.name)
    return {
        ACCOUNT_SERVICE: gettext("WeChat accounts"),
        "database": gettext("Database"),
        "redis": gettext("Redis"),
        "celery": gettext("Celery workers"),
        "ai_app": gettext("AI apps"),
    }.get(service, service)


def target_of_call(connection_id: int | None, ai_app_id: int | None) -> str:
    if connection_id:
        return f"connection:{connection_id}"
    if ai_app_id:
        return f"ai_app:{ai_app_id}"
    return ""


def parse_target(target: str) -> tuple[str, int | None]:
    kind, _sep, raw = (target or "").partition(":")
    try:
        return kind, int(raw)
    except ValueError:
        return kind, None


def p95(values: list[float]) -> float | None:
    """The nearest-rank 95th percentile (the same on SQLite and PostgreSQL)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _rate(part: int, total: int) -> float | None:
    return None if not total else round(100.0 * part / total, 2)


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else round(float(ms) / 1000.0, 3)


def _summary(latencies: list[int], ok: int, total: int) -> dict[str, Any]:
    return {
        "request_count": total,
        "success_count": ok,
        "error_count": total - ok,
        "success_rate": _rate(ok, total),
        "error_rate": _rate(total - ok, total),
        "avg_response_time": _seconds(sum(latencies) / len(latencies)) if latencies else None,
        "p95_response_time": _seconds(p95(latencies)),
    }


def _target_names(*, org, targets: set[str]) -> dict[str, str]:
    ids: dict[str, list[int]] = defaultdict(list)
    for target in targets:
        kind, pk = parse_target(target)
        if pk is not None:
            ids[kind].append(pk)
    names: dict[str, str] = {}
    if ids.get("connection"):
        for pk, name in PlatformConnection.objects.filter(
            org=org, id__in=ids["connection"]
        ).values_list("id", "name"):
            names[f"connection:{pk}"] = name
    if ids.get("ai_app"):
        for pk, name in AIApp.objects.filter(org=org, id__in=ids["ai_app"]).values_list(
            "id", "name"
        ):
            names[f"ai_app:{pk}"] = name
    if ids.get("account"):
        from apps.wechat_accounts.models import WeChatAccount

        for pk, name in WeChatAccount.objects.filter(org=org, id__in=ids["account"]).values_list(
            "id", "name"
        ):
            names[f"account:{pk}"] = name
    return names


def _call_queryset(*, org, since: datetime, until: datetime, service: str | None, target: str):
    queryset = IntegrationCall.objects.filter(org=org, at__gte=since, at__lt=until)
    if service:
        spec = SERVICE_SPECS.get(service)
        queryset = queryset.filter(service__in=list(spec.services) if spec else [])
    if target:
        kind, pk = parse_target(target)
        if kind == "connection":
            queryset = queryset.filter(connection_id=pk)
        elif kind == "ai_app":
            queryset = queryset.filter(ai_app_id=pk)
        else:
            queryset = queryset.none()
    return queryset


def call_stats_by_target(
    *, org, since: datetime, until: datetime, service: str | None = None, target: str = ""
) -> dict[tuple[str, str], dict[str, Any]]:
    """``{(service, target): summary}`` of the call log in ``[since, until)``; the service's
    total is under target ``""``. One query; latencies are aggregated in Python for p95."""
    groups: dict[tuple[str, str], list] = defaultdict(lambda: [[], 0, 0])
    rows = _call_queryset(
        org=org, since=since, until=until, service=service, target=target
    ).values_list("service", "connection_id", "ai_app_id", "ok", "latency_ms")
    for call_service, connection_id, ai_app_id, ok, latency in rows.iterator(chunk_size=5000):
        key = SERVICE_OF_CALL.get(call_service, call_service)
        call_target = target_of_call(connection_id, ai_app_id)
        keys = [(key, "")] + ([(key, call_target)] if call_target else [])
        for group_key in keys:
            group = groups[group_key]
            group[0].append(latency)
            group[1] += 1 if ok else 0
            group[2] += 1
    return {key: _summary(lat, ok, total) for key, (lat, ok, total) in groups.items()}


def ledger_usage(
    *, org, since: datetime, until: datetime, service: str | None = None
) -> dict[str, dict[str, Any]]:
    """``{service: {"tokens", "cost"}}`` from the billing ledger in ``[since, until)``."""
    from apps.billing.models import CostLedger

    queryset = CostLedger.objects.filter(org=org, created_at__gte=since, created_at__lt=until)
    if service:
        spec = SERVICE_SPECS.get(service)
        queryset = queryset.filter(provider__in=list(spec.services) if spec else [])
    usage: dict[str, dict[str, Any]] = defaultdict(lambda: {"tokens": 0, "cost": Decimal("0")})
    for row in queryset.values("provider").annotate(
        tin=Sum("input_tokens"), tout=Sum("output_tokens"), cost=Sum("cost")
    ):
        key = SERVICE_OF_CALL.get(row["provider"], row["provider"])
        usage[key]["tokens"] += (row["tin"] or 0) + (row["tout"] or 0)
        usage[key]["cost"] += row["cost"] or Decimal("0")
    return dict(usage)


def sample_stats_by_target(
    *,
    org,
    since: datetime,
    until: datetime,
    services: tuple[str, ...],
    target: str = "",
) -> dict[tuple[str, str], dict[str, Any]]:
    """Summaries of the health samples (the organisation's and the platform's) by target."""
    queryset = HealthSample.objects.filter(
        Q(org=org) | Q(org__isnull=True), service__in=list(services), at__gte=since, at__lt=until
    )
    if target:
        queryset = queryset.filter(target=target)
    groups: dict[tuple[str, str], list] = defaultdict(lambda: [[], 0, 0])
    for service, tgt, ok, ms in queryset.values_list(
        "service", "target", "ok", "response_time_ms"
    ).iterator(chunk_size=5000):
        for group_key in [(service, "")] + ([(service, tgt)] if tgt else []):
            group = groups[group_key]
            if ms is not None:
                group[0].append(ms)
            group[1] += 1 if ok else 0
            group[2] += 1
    return {key: _summary(lat, ok, total) for key, (lat, ok, total) in groups.items()}


def metrics_list(
    *,
    org,
    window: str = "1h",
    service: str | None = None,
    target: str = "",
    now: datetime | None = None,
) -> list[dict[str, Any]]:
    """Metrics of each service (and its targets) of ``org`` over ``window`` (5m, 1h, 24h)."""
    until = now or timezone.now()
    since = until - timedelta(seconds=WINDOWS[window])
    services = [service] if service else list(ALL_SERVICES)
    integration = [s for s in services if s in INTEGRATION_SERVICES]
    sampled = tuple(s for s in services if s not in INTEGRATION_SERVICES)
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    if integration:
        stats.update(
            call_stats_by_target(org=org, since=since, until=until, service=service, target=target)
        )
    if sampled:
        stats.update(
            sample_stats_by_target(
                org=org, since=since, until=until, services=sampled, target=target
            )
        )
    usage = ledger_usage(org=org, since=since, until=until, service=service) if integration else {}
    names = _target_names(org=org, targets={tgt for (_s, tgt) in stats if tgt})
    empty = _summary([], 0, 0)
    result = []
    for key in services:
        targets = [
            {"target": tgt, "target_name": names.get(tgt, ""), **summary}
            for (svc, tgt), summary in sorted(stats.items())
            if svc == key and tgt
        ]
        total = stats.get((key, ""))
        if total is None and not (service and key == service):
            continue
        entry = {
            "service": key,
            "service_name": service_name(key),
            "window": window,
            "window_start": since,
            "window_end": until,
            **(total or empty),
            "tokens": usage.get(key, {}).get("tokens", 0),
            "cost": str(usage.get(key, {}).get("cost", Decimal("0"))),
            "targets": targets,
        }
        result.append(entry)
    return result


def _direction(values: list[float]) -> str:
    """ "increasing" / "decreasing" when the mean of the last third of the points differs from
    the first third's by more than 5 % (of the larger), else "stable"."""
    if len(values) < 2:
        return "stable"
    third = max(1, len(values) // 3)
    first = sum(values[:third]) / third
    last = sum(values[-third:]) / third
    scale = max(abs(first), abs(last), 1e-9)
    if abs(last - first) / scale <= 0.05:
        return "stable"
    return "increasing" if last > first else "decreasing"


def _trend(values: list[float]) -> dict[str, Any]:
    if not values:
        return {"current": None, "average": None, "min": None, "max": None, "trend": "stable"}
    return {
        "current": round(values[-1], 3),
        "average": round(sum(values) / len(values), 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "trend": _direction(values),
    }


def service_trends(
    *,
    org,
    service: str,
    hours: int = 24,
    points: int = 48,
    target: str = "",
    now: datetime | None = None,
) -> dict[str, Any]:
    """The seed's trends: response time (s) and success rate (%) per bucket over ``hours``
    (``points`` equal buckets; empty buckets are left out of the statistics)."""
    until = now or timezone.now()
    since = until - timedelta(hours=hours)
    bucket = (until - since) / points
    buckets: list[list] = [[[], 0, 0] for _ in range(points)]
    if service in INTEGRATION_SERVICES:
        rows = _call_queryset(
            org=org, since=since, until=until, service=service, target=target
        ).values_list("at", "ok", "latency_ms")
    else:
        rows = HealthSample.objects.filter(
            Q(org=org) | Q(org__isnull=True), service=service, at__gte=since, at__lt=until
        )
        if target:
            rows = rows.filter(target=target)
        rows = rows.values_list("at", "ok", "response_time_ms")
    for at, ok, ms in rows.iterator(chunk_size=5000):
        index = min(points - 1, int((at - since) / bucket))
        if ms is not None:
            buckets[index][0].append(ms)
        buckets[index][1] += 1 if ok else 0
        buckets[index][2] += 1
    series = []
    for i, (latencies, ok, total) in enumerate(buckets):
        if not total:
            continue
        series.append(
            {
                "at": since + bucket * (i + 1),
                "requests": total,
                "response_time": _seconds(sum(latencies) / len(latencies)) if latencies else None,
                "success_rate": _rate(ok, total),
            }
        )
    response_times = [p["response_time"] for p in series if p["response_time"] is not None]
    success_rates = [p["success_rate"] for p in series if p["success_rate"] is not None]
    return {
        "service": service,
        "service_name": service_name(service),
        "trends": {"response_time": _trend(response_times), "success_rate": _trend(success_rates)},
        "data_points": len(series),
        "time_range": f"{hours} hours",
        "series": series,
    }


def latest_samples(*, org, since: datetime) -> dict[tuple[str, str], HealthSample]:
    """The newest sample of each (service, target) of ``org`` and of the platform."""
    latest: dict[tuple[str, str], HealthSample] = {}
    for sample in HealthSample.objects.filter(
        Q(org=org) | Q(org__isnull=True), at__gte=since
    ).order_by("-at", "-id"):
        latest.setdefault((sample.service, sample.target), sample)
    return latest


def overview(*, org, now: datetime | None = None) -> dict[str, Any]:
    """The seed's monitoring overview: each service's status from its targets' latest checks
    (all ok: healthy; some failing, or an open high/critical alert: degraded; all failing:
    down), the last hour's response time and success rate, and the alert counts."""
    from apps.monitoring.alerting import config_get

    now = now or timezone.now()
    config = config_get(org=org)
    fresh_since = now - timedelta(seconds=max(600, 4 * config.interval_seconds))
    latest = latest_samples(org=org, since=fresh_since)
    hour = metrics_list(org=org, window="1h", now=now)
    hour_by_service = {entry["service"]: entry for entry in hour}
    open_alerts = Alert.objects.filter(org=org, resolved_at__isnull=True)
    alert_services = set(
        open_alerts.filter(severity__in=["high", "critical"]).values_list("service", flat=True)
    )
    services: dict[str, dict[str, Any]] = {}
    for key in ALL_SERVICES:
        samples = [s for (svc, _t), s in latest.items() if svc == key]
        stats = hour_by_service.get(key)
        if not samples and not stats:
            continue
        failing = sum(1 for s in samples if not s.ok)
        if not samples:
            status = "unknown"
        elif failing == len(samples):
            status = "down"
        elif failing or key in alert_services:
            status = "degraded"
        else:
            status = "healthy"
        sampled_ms = [s.response_time_ms for s in samples if s.response_time_ms is not None]
        response_time = (stats or {}).get("avg_response_time")
        if response_time is None and sampled_ms:
            response_time = _seconds(sum(sampled_ms) / len(sampled_ms))
        services[key] = {
            "service_name": service_name(key),
            "status": status,
            "last_check": max((s.at for s in samples), default=None),
            "response_time": response_time,
            "success_rate": (stats or {}).get("success_rate"),
            "targets": len(samples),
            "failing_targets": failing,
        }
    statuses = [entry["status"] for entry in services.values()]
    return {
        "total_services": len(services),
        "healthy_services": statuses.count("healthy"),
        "degraded_services": statuses.count("degraded"),
        "down_services": statuses.count("down"),
        "active_alerts": open_alerts.count(),
        "critical_alerts": open_alerts.filter(severity=Alert.Severity.CRITICAL).count(),
        "services": services,
        "monitoring_enabled": config.enabled,
        "last_update": config.last_run_at,
    }
