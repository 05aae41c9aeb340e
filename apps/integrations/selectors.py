"""Reads of the integrations app: connections, AI apps (cached) and call-log aggregates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db.models import Avg, Count, Max, Q, QuerySet
from django.utils import timezone

from apps.core import crypto
from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection

# -- connections ---------------------------------------------------------------------------


def connection_list(*, org, provider: str | None = None) -> QuerySet[PlatformConnection]:
    queryset = PlatformConnection.objects.for_org(org)
    if provider:
        queryset = queryset.filter(provider=provider)
    return queryset


def connection_get(*, org, connection_id: int) -> PlatformConnection | None:
    return PlatformConnection.objects.for_org(org).filter(id=connection_id).first()


def connection_get_by_webhook_secret_all_orgs(
    *, provider: str, secret: str
) -> PlatformConnection | None:
    """The connection a webhook URL belongs to (the secret is the only credential there, so
    this deliberately searches every organisation)."""
    if not secret:
        return None
    return (
        PlatformConnection.objects.select_related("org")
        .filter(provider=provider, webhook_secret=secret)
        .exclude(status=PlatformConnection.Status.DISABLED)
        .first()
    )


# -- AI apps (cached) ----------------------------------------------------------------------
# The cache holds a dict of column values with the API key still encrypted, never a pickled
# instance (that would put the plaintext key into Redis). A miss is cached as None too.

_MISSING = "missing"


def _app_key(org_id: int, ai_app_id: int) -> str:
    return f"integrations:aiapp:{org_id}:{ai_app_id}"


def _default_key(org_id: int, purpose: str) -> str:
    return f"integrations:aiapp-default:{org_id}:{purpose}"


def _pack(ai_app: AIApp | None) -> dict | str:
    if ai_app is None:
        return _MISSING
    data = {f.attname: getattr(ai_app, f.attname) for f in AIApp._meta.concrete_fields}
    data["api_key"] = crypto.encrypt(ai_app.api_key) if ai_app.api_key else ""
    return data


def _unpack(data: dict | str) -> AIApp | None:
    if data == _MISSING:
        return None
    data = dict(data)
    data["api_key"] = crypto.decrypt(data["api_key"]) if data["api_key"] else ""
    ai_app = AIApp(**data)
    ai_app._state.adding = False
    ai_app._state.db = "default"
    return ai_app


def _cached(key: str, load) -> AIApp | None:
    data = cache.get(key)
    if data is None:
        data = _pack(load())
        cache.set(key, data, settings.AI_APP_CACHE_SECONDS)
    return _unpack(data)


def ai_app_get(*, org, ai_app_id: int) -> AIApp | None:
    """An AI app of ``org`` (or None), read through the cache."""
    org_id = getattr(org, "pk", org)
    return _cached(
        _app_key(org_id, ai_app_id),
        lambda: AIApp.objects.filter(org_id=org_id, id=ai_app_id).first(),
    )


def ai_app_default(*, org, purpose: str = AIApp.Purpose.REPLY) -> AIApp | None:
    """The enabled default AI app of ``org`` for ``purpose`` (or None), read through the cache."""
    org_id = getattr(org, "pk", org)
    return _cached(
        _default_key(org_id, purpose),
        lambda: AIApp.objects.filter(
            org_id=org_id, purpose=purpose, is_default=True, enabled=True
        ).first(),
    )


def ai_app_cache_invalidate(*, org_id: int, ai_app_id: int | None = None) -> None:
    keys = [_default_key(org_id, purpose) for purpose in AIApp.Purpose.values]
    if ai_app_id is not None:
        keys.append(_app_key(org_id, ai_app_id))
    cache.delete_many(keys)


def ai_app_list(*, org, provider: str | None = None, purpose: str | None = None) -> QuerySet[AIApp]:
    queryset = AIApp.objects.for_org(org)
    if provider:
        queryset = queryset.filter(provider=provider)
    if purpose:
        queryset = queryset.filter(purpose=purpose)
    return queryset


# -- call log ------------------------------------------------------------------------------


def integration_call_list(*, org) -> QuerySet[IntegrationCall]:
    return IntegrationCall.objects.for_org(org).select_related("connection", "ai_app")


def stats_window(
    hours: int | None = None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    until = now or timezone.now()
    return until - timedelta(hours=hours or settings.INTEGRATION_STATS_DEFAULT_HOURS), until


def integration_call_stats(
    *,
    org,
    services: list[str] | tuple[str, ...],
    since: datetime,
    until: datetime,
    connection_id: int | None = None,
    ai_app_id: int | None = None,
) -> dict:
    """Aggregates of the call log of ``org`` for ``services`` in ``[since, until)``.

    One row is one attempt, so a call that succeeded on its second attempt counts one failed
    and one successful request. Times are in seconds, rates in percent (the seed's units).
    """
    queryset = IntegrationCall.objects.filter(
        org=org, service__in=list(services), at__gte=since, at__lt=until
    )
    if connection_id is not None:
        queryset = queryset.filter(connection_id=connection_id)
    if ai_app_id is not None:
        queryset = queryset.filter(ai_app_id=ai_app_id)
    totals = queryset.aggregate(
        total=Count("id"),
        ok=Count("id", filter=Q(ok=True)),
        avg_latency=Avg("latency_ms"),
        max_latency=Max("latency_ms"),
        last_at=Max("at"),
    )
    total = totals["total"] or 0
    successful = totals["ok"] or 0
    failed = total - successful
    errors = {
        row["error_class"] or "unknown": row["n"]
        for row in queryset.filter(ok=False)
        .values("error_class")
        .annotate(n=Count("id"))
        .order_by("-n", "error_class")
    }
    operations = [
        {
            "operation": row["operation"],
            "total_requests": row["n"],
            "failed_requests": row["failed"],
            "average_response_time": _seconds(row["avg"]),
        }
        for row in queryset.values("operation")
        .annotate(n=Count("id"), failed=Count("id", filter=Q(ok=False)), avg=Avg("latency_ms"))
        .order_by("-n", "operation")
    ]
    return {
        "window_start": since,
        "window_end": until,
        "total_requests": total,
        "successful_requests": successful,
        "failed_requests": failed,
        "success_rate": _percent(successful, total),
        "error_rate": _percent(failed, total),
        "average_response_time": _seconds(totals["avg_latency"]),
        "max_response_time": _seconds(totals["max_latency"]),
        "last_call_at": totals["last_at"],
        "errors": errors,
        "operations": operations,
    }


def _percent(part: int, total: int) -> float | None:
    return None if not total else round(100.0 * part / total, 2)


def _seconds(ms) -> float | None:
    return None if ms is None else round(float(ms) / 1000.0, 3)


# -- health and overview -------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceSpec:
    key: str
    name: str
    kind: str  # "connection" or "ai_app"
    provider: str
    services: tuple[str, ...]


SERVICE_SPECS: dict[str, ServiceSpec] = {
    "gewe": ServiceSpec("gewe", "GeWe", "connection", "gewe", ("gewe",)),
    "ecloud": ServiceSpec("ecloud", "E云管家", "connection", "ecloud", ("ecloud",)),
    "openai": ServiceSpec(
        "openai", "OpenAI-compatible", "ai_app", "openai", ("openai", "dashscope")
    ),
    "fastgpt": ServiceSpec("fastgpt", "FastGPT", "ai_app", "fastgpt", ("fastgpt",)),
    "dify": ServiceSpec("dify", "Dify", "ai_app", "dify", ("dify",)),
}


def _health_items(*, org, spec: ServiceSpec) -> list[dict]:
    if spec.kind == "connection":
        return [
            {
                "id": c.id,
                "name": c.name,
                "healthy": None
                if c.status
                in (PlatformConnection.Status.UNKNOWN, PlatformConnection.Status.DISABLED)
                else c.status == PlatformConnection.Status.OK,
                "status": c.status,
                "detail": c.status_detail,
                "response_time": _seconds(c.last_latency_ms),
                "last_check": c.last_checked_at,
            }
            for c in connection_list(org=org, provider=spec.provider)
        ]
    items = []
    for app in ai_app_list(org=org, provider=spec.provider):
        if not app.enabled:
            status = "disabled"
        elif app.last_check_ok is None:
            status = "unknown"
        else:
            status = "ok" if app.last_check_ok else "error"
        items.append(
            {
                "id": app.id,
                "name": app.name,
                "healthy": app.last_check_ok if app.enabled else None,
                "status": status,
                "detail": app.last_check_detail,
                "response_time": _seconds(app.last_latency_ms),
                "last_check": app.last_checked_at,
            }
        )
    return items


def service_health(*, org, key: str, since: datetime, until: datetime) -> dict:
    """Health of one service kind in ``org``: the last live check of each of its connections
    or AI apps (``services_sync`` refreshes them) plus call-log stats over the window.

    ``healthy`` is True when at least one is configured and every active one passed its last
    check; unchecked or disabled ones don't count against it.
    """
    spec = SERVICE_SPECS[key]
    items = _health_items(org=org, spec=spec)
    active = [item for item in items if item["status"] != "disabled"]
    checked = [item for item in active if item["healthy"] is not None]
    latencies = [item["response_time"] for item in checked if item["response_time"] is not None]
    last_checks = [item["last_check"] for item in items if item["last_check"] is not None]
    return {
        "service_name": spec.name,
        "configured": bool(active),
        "healthy": bool(checked) and all(item["healthy"] for item in checked),
        "response_time": round(sum(latencies) / len(latencies), 3) if latencies else None,
        "last_check": max(last_checks) if last_checks else None,
        "items": items,
        "stats": integration_call_stats(org=org, services=spec.services, since=since, until=until),
    }


def integrations_overview(*, org, since: datetime, until: datetime) -> dict:
    services = {
        key: service_health(org=org, key=key, since=since, until=until) for key in SERVICE_SPECS
    }
    items = [item for health in services.values() for item in health["items"]]
    last_checks = [health["last_check"] for health in services.values() if health["last_check"]]
    return {
        "services": services,
        "gewe_status": services["gewe"],
        "fastgpt_status": services["fastgpt"],
        "total_integrations": len(items),
        "active_integrations": sum(1 for item in items if item["healthy"]),
        "last_sync": max(last_checks) if last_checks else None,
    }
