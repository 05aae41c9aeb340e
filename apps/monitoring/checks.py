"""Live health checks, each stored as a ``HealthSample``.

- Platform connections: ``integrations.services.connection_test`` (GeWe /login/deviceList,
  E云 /queryLoginWx: the cheapest authenticated calls).
- WeChat accounts (online, offline or risk-controlled with a device): the platform's online
  check through ``wechat_accounts.services.account_check_online`` (which moves the account's
  status), spread over the interval by countdowns so that a large organisation does not
  burst the platform.
- AI apps: the providers have no free endpoint, so a live check is one minimal chat turn
  (``integrations.services.ai_app_test`` with a one-word prompt); it is logged in the call log
  but never written to the billing ledger, runs at most every ``ai_check_interval_seconds`` and
  can be switched off (``ai_live_checks``): the app's health then comes from its real calls
  in the evaluation window (no calls, no sample).
- The platform's dependencies (database, Redis, Celery workers) once per tick for everyone.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Avg, Count, Q
from django.utils import timezone

from apps.core import health as core_health
from apps.core.exceptions import NotFoundError
from apps.core.redis import get_redis, redis_key
from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection
from apps.monitoring.alerting import config_get
from apps.monitoring.metrics import ACCOUNT_SERVICE, SERVICE_OF_CALL
from apps.monitoring.models import HealthSample
from apps.orgs.models import Organization

logger = logging.getLogger(__name__)

BEAT_TICK_KEY = ("monitoring", "beat-tick")
WORKER_PONG_KEY = ("monitoring", "worker-pong")


def sample_record(
    *,
    org_id: int | None,
    service: str,
    ok: bool,
    target: str = "",
    target_name: str = "",
    response_time_ms: int | None = None,
    error: str = "",
    at: datetime | None = None,
) -> HealthSample:
    sample = HealthSample(
        org_id=org_id,
        service=service,
        target=target,
        target_name=target_name[:200],
        ok=ok,
        response_time_ms=response_time_ms,
        error=(error or "")[:300],
        at=at or timezone.now(),
    )
    sample.save()
    return sample


def _ms(started: float) -> int:
    return max(0, int((time.monotonic() - started) * 1000))


def check_connection(*, org_id: int, connection_id: int) -> HealthSample | None:
    from apps.integrations.services import connection_test

    connection = PlatformConnection.objects.filter(org_id=org_id, id=connection_id).first()
    if connection is None or connection.status == PlatformConnection.Status.DISABLED:
        return None
    try:
        result = connection_test(org=connection.org, connection_id=connection_id)
    except NotFoundError:
        return None
    return sample_record(
        org_id=org_id,
        service=connection.provider,
        target=f"connection:{connection_id}",
        target_name=connection.name,
        ok=result.ok,
        response_time_ms=result.latency_ms,
        error="" if result.ok else result.detail or result.error_class or "",
    )


def check_ai_app(*, org_id: int, ai_app_id: int, live: bool = True) -> HealthSample | None:
    """A live minimal turn, or (``live=False``) a sample from the app's recent real calls."""
    from apps.integrations.services import ai_app_test

    ai_app = AIApp.objects.filter(org_id=org_id, id=ai_app_id, enabled=True).first()
    if ai_app is None:
        return None
    service = SERVICE_OF_CALL.get(ai_app.provider, ai_app.provider)
    common = {
        "org_id": org_id,
        "service": service,
        "target": f"ai_app:{ai_app_id}",
        "target_name": ai_app.name,
    }
    if live:
        try:
            result = ai_app_test(
                org=ai_app.org, ai_app_id=ai_app_id, prompt=settings.MONITORING_AI_CHECK_PROMPT
            )
        except NotFoundError:
            return None
        return sample_record(
            **common,
            ok=result.ok,
            response_time_ms=result.latency_ms,
            error="" if result.ok else result.detail or result.error_class or "",
        )
    config = config_get(org=org_id)
    since = timezone.now() - timedelta(seconds=config.evaluation_window_seconds)
    stats = IntegrationCall.objects.filter(org_id=org_id, ai_app_id=ai_app_id, at__gte=since)
    stats = stats.aggregate(n=Count("id"), ok=Count("id", filter=Q(ok=True)), avg=Avg("latency_ms"))
    if not stats["n"]:
        return None
    return sample_record(
        **common,
        ok=bool(stats["ok"]),
        response_time_ms=int(stats["avg"] or 0),
        error="" if stats["ok"] else "every call in the window failed",
    )


def check_account(*, org_id: int, account_id: int) -> HealthSample | None:
    from apps.wechat_accounts.models import WeChatAccount
    from apps.wechat_accounts.services import account_check_online

    account = WeChatAccount.objects.filter(org_id=org_id, id=account_id).first()
    if account is None:
        return None
    started = time.monotonic()
    try:
        status = account_check_online(org_id=org_id, account_id=account_id)
    except NotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - a failing check is a failed sample, not a crash.
        return sample_record(
            org_id=org_id,
            service=ACCOUNT_SERVICE,
            target=f"account:{account_id}",
            target_name=account.name,
            ok=False,
            response_time_ms=_ms(started),
            error=f"{type(exc).__name__}: {exc}",
        )
    ok = status == WeChatAccount.Status.ONLINE
    return sample_record(
        org_id=org_id,
        service=ACCOUNT_SERVICE,
        target=f"account:{account_id}",
        target_name=account.name,
        ok=ok,
        response_time_ms=_ms(started),
        error="" if ok else str(status),
    )


# -- the platform's dependencies ------------------------------------------------------------


def check_database() -> HealthSample | None:
    """The readiness probe of ``apps.core.health``, timed and stored as a sample."""
    started = time.monotonic()
    error = core_health.check_database()
    if error:
        logger.warning("database check failed: %s", error)
        return None  # Nowhere to store it; /readyz and the orchestrator report this one.
    return sample_record(org_id=None, service="database", ok=True, response_time_ms=_ms(started))


def check_redis() -> HealthSample:
    started = time.monotonic()
    error = core_health.check_redis() or ""
    return sample_record(
        org_id=None, service="redis", ok=not error, response_time_ms=_ms(started), error=error
    )


def beat_tick_record(*, now: datetime | None = None) -> None:
    """The beat's fan-out task stores its run time (``/readyz/deep`` reads it)."""
    now = now or timezone.now()
    get_redis().set(redis_key(*BEAT_TICK_KEY), now.timestamp(), ex=86400)


def worker_pong_record(*, sent_at: float) -> float:
    """A worker ran the ping task: store when, and the queue round trip in seconds."""
    now = time.time()
    latency = max(0.0, now - sent_at)
    get_redis().hset(redis_key(*WORKER_PONG_KEY), mapping={"at": now, "latency": latency})
    get_redis().expire(redis_key(*WORKER_PONG_KEY), 86400)
    return latency


def worker_pong_get() -> tuple[float | None, float | None]:
    data = get_redis().hgetall(redis_key(*WORKER_PONG_KEY)) or {}
    at = data.get(b"at") or data.get("at")
    latency = data.get(b"latency") or data.get("latency")
    return (float(at) if at else None, float(latency) if latency else None)


def beat_tick_get() -> float | None:
    value = get_redis().get(redis_key(*BEAT_TICK_KEY))
    return float(value) if value else None


def check_celery_workers(*, now: float | None = None) -> HealthSample:
    """Workers are healthy when a ping task ran within ``MONITORING_WORKER_STALE_SECONDS``;
    the sample's response time is that ping's queue round trip."""
    now = now or time.time()
    at, latency = worker_pong_get()
    stale = settings.MONITORING_WORKER_STALE_SECONDS
    ok = at is not None and now - at <= stale
    return sample_record(
        org_id=None,
        service="celery",
        ok=ok,
        response_time_ms=None if latency is None else int(latency * 1000),
        error=""
        if ok
        else ("no worker answered yet" if at is None else f"last answer {int(now - at)} s ago"),
    )


def readiness_celery() -> str | None:
    """``/readyz/deep``: a worker answered a ping recently (skipped when tasks run eagerly)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    try:
        at, _latency = worker_pong_get()
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"[:300]
    if at is None:
        return "no worker has answered a ping yet"
    age = time.time() - at
    if age > settings.MONITORING_WORKER_STALE_SECONDS:
        return f"last worker ping answered {int(age)} s ago"
    return None


def readiness_beat() -> str | None:
    """``/readyz/deep``: the beat's monitoring tick ran recently (skipped when eager)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return None
    try:
        at = beat_tick_get()
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"[:300]
    if at is None:
        return "the beat has not ticked yet"
    age = time.time() - at
    if age > settings.MONITORING_BEAT_STALE_SECONDS:
        return f"last beat tick {int(age)} s ago"
    return None


# -- scheduling ------------------------------------------------------------------------------


def checks_schedule_org(*, org: Organization, now: datetime | None = None) -> dict[str, int]:
    """Enqueue this round's checks of ``org``: connections and AI apps now, accounts spread
    over the interval; every task expires with the interval so a backlog is not replayed."""
    from apps.monitoring import tasks
    from apps.wechat_accounts.models import WeChatAccount

    now = now or timezone.now()
    config = config_get(org=org)
    interval = config.interval_seconds
    counts = {"connections": 0, "ai_apps": 0, "accounts": 0}
    for connection_id in (
        PlatformConnection.objects.filter(org=org)
        .exclude(status=PlatformConnection.Status.DISABLED)
        .values_list("id", flat=True)
    ):
        tasks.monitoring_check_connection.apply_async(
            kwargs={"org_id": org.pk, "connection_id": connection_id}, expires=interval
        )
        counts["connections"] += 1
    live_due_before = now - timedelta(seconds=config.ai_check_interval_seconds)
    for ai_app in AIApp.objects.filter(org=org, enabled=True).only("id", "provider"):
        live = (
            config.ai_live_checks
            and not HealthSample.objects.filter(
                org=org, target=f"ai_app:{ai_app.id}", at__gt=live_due_before
            ).exists()
        )
        if not live and config.ai_live_checks:
            continue  # Checked live recently: wait for its interval.
        tasks.monitoring_check_ai_app.apply_async(
            kwargs={"org_id": org.pk, "ai_app_id": ai_app.id, "live": live}, expires=interval
        )
        counts["ai_apps"] += 1
    account_ids = list(
        WeChatAccount.objects.filter(
            org=org,
            status__in=[
                WeChatAccount.Status.ONLINE,
                WeChatAccount.Status.OFFLINE,
                WeChatAccount.Status.RISK_CONTROLLED,
            ],
        )
        .exclude(device_id="")
        .order_by("id")
        .values_list("id", flat=True)
    )
    step = interval / max(1, len(account_ids))
    for i, account_id in enumerate(account_ids):
        tasks.monitoring_check_account.apply_async(
            kwargs={"org_id": org.pk, "account_id": account_id},
            countdown=i * step,
            expires=interval + i * step,
        )
        counts["accounts"] += 1
    return counts
