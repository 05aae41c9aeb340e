"""Tasks of the monitoring app (thin: they load ids and call one service)."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.core import realtime, ws_registry
from apps.monitoring import selectors, services

logger = logging.getLogger(__name__)

NOTIFICATION_MAX_RETRIES = 5


@shared_task(
    bind=True,
    max_retries=NOTIFICATION_MAX_RETRIES,
    acks_late=True,
    soft_time_limit=50,
    time_limit=60,
)
def notification_delivery_send(self, *, org_id: int, delivery_id: int) -> str:
    """Send one e-mail / webhook / SMS delivery; retries transient failures with exponential
    backoff and jitter (capped at 10 minutes), then marks the delivery failed."""
    final = self.request.retries >= self.max_retries
    try:
        return services.notification_delivery_send(
            org_id=org_id, delivery_id=delivery_id, final_attempt=final
        )
    except services.DeliveryTransientError as exc:
        from celery.utils.time import get_exponential_backoff_interval

        countdown = get_exponential_backoff_interval(
            factor=2, retries=self.request.retries, maximum=600, full_jitter=True
        )
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(expires=55, soft_time_limit=45, time_limit=50)
def ws_stats_push() -> int:
    """Every minute: ``stats_update`` to the monitor group of each organisation with live sockets,
    and ``user_status_update`` offline for users whose sockets all died without disconnecting."""
    orgs = ws_registry.orgs_with_connections()
    for org_id in orgs:
        for user_id in ws_registry.prune_expired_presence(org_id):
            realtime.push(
                "user_status_update",
                {"user_id": user_id, "name": "", "status": "offline"},
                groups=[realtime.group_for_org(org_id)],
            )
        realtime.push(
            "stats_update",
            selectors.ws_stats(org_id=org_id),
            groups=[realtime.group_for_monitor(org_id)],
        )
    return len(orgs)


# ==================================================================================================
# Health checks, alert evaluation and retention (the monitoring work; logic in checks.py and
# alerting.py).
# ==================================================================================================


@shared_task(expires=9, soft_time_limit=20, time_limit=25)
def monitoring_tick() -> int:
    """Every ``MONITORING_TICK_SECONDS``: record the beat tick, check the platform's
    dependencies, and claim each organisation whose own interval has passed (a conditional
    update of ``last_run_at``, so overlapping ticks never run an organisation twice)."""
    import time as _time
    from datetime import timedelta

    from django.utils import timezone

    from apps.monitoring import checks
    from apps.monitoring.models import MonitoringConfig
    from apps.orgs.models import Organization

    now = timezone.now()
    checks.beat_tick_record(now=now)
    monitoring_worker_ping.apply_async(kwargs={"sent_at": _time.time()}, expires=60)
    checks.check_database()
    checks.check_redis()
    checks.check_celery_workers()
    missing = Organization.objects.exclude(
        id__in=MonitoringConfig.objects.values_list("org_id", flat=True)
    ).values_list("id", flat=True)
    MonitoringConfig.objects.bulk_create(
        [MonitoringConfig(org_id=org_id) for org_id in missing], ignore_conflicts=True
    )
    claimed = 0
    for config in MonitoringConfig.objects.filter(enabled=True).only(
        "id", "org_id", "interval_seconds", "last_run_at"
    ):
        due = config.last_run_at is None or (
            config.last_run_at <= now - timedelta(seconds=config.interval_seconds - 1)
        )
        # Compare-and-set on last_run_at: of two overlapping ticks only one claims the org.
        won = due and (
            MonitoringConfig.objects.filter(
                id=config.id, enabled=True, last_run_at=config.last_run_at
            ).update(last_run_at=now)
        )
        if won:
            claimed += 1
            monitoring_org_run.apply_async(kwargs={"org_id": config.org_id}, expires=25)
    return claimed


@shared_task(soft_time_limit=50, time_limit=60)
def monitoring_org_run(*, org_id: int) -> dict:
    """One organisation's round: enqueue its checks, then evaluate its alerts."""
    from apps.core.redis import get_redis, redis_key
    from apps.monitoring import alerting, checks
    from apps.orgs.models import Organization

    org = Organization.objects.filter(id=org_id).first()
    if org is None:
        logger.info("monitoring_org_run: organisation %s is gone", org_id)
        return {}
    counts = checks.checks_schedule_org(org=org)
    from django.conf import settings as dj_settings

    anomalies = bool(
        get_redis().set(
            redis_key("monitoring", "anomaly-due", org_id),
            1,
            nx=True,
            ex=dj_settings.MONITORING_ANOMALY_EVERY_SECONDS,
        )
    )
    counts.update(alerting.evaluate_org(org=org, anomalies=anomalies))
    realtime.push(
        "stats_update",
        {"source": "monitoring", "event": "round", **counts},
        groups=[realtime.group_for_monitor(org_id)],
    )
    return counts


@shared_task(soft_time_limit=40, time_limit=50)
def monitoring_check_connection(*, org_id: int, connection_id: int) -> bool | None:
    from apps.monitoring import checks

    sample = checks.check_connection(org_id=org_id, connection_id=connection_id)
    return None if sample is None else sample.ok


@shared_task(soft_time_limit=100, time_limit=120)
def monitoring_check_ai_app(*, org_id: int, ai_app_id: int, live: bool = True) -> bool | None:
    from apps.monitoring import checks

    sample = checks.check_ai_app(org_id=org_id, ai_app_id=ai_app_id, live=live)
    return None if sample is None else sample.ok


@shared_task(soft_time_limit=40, time_limit=50)
def monitoring_check_account(*, org_id: int, account_id: int) -> bool | None:
    from apps.monitoring import checks

    sample = checks.check_account(org_id=org_id, account_id=account_id)
    return None if sample is None else sample.ok


@shared_task(expires=60, soft_time_limit=10, time_limit=15)
def monitoring_worker_ping(*, sent_at: float) -> float:
    """The Celery health check: a worker picking this up proves the queue round trip."""
    from apps.monitoring import checks

    return checks.worker_pong_record(sent_at=sent_at)


@shared_task(soft_time_limit=1700, time_limit=1800)
def monitoring_retention_clean() -> dict:
    """Daily: samples and resolved alerts past each organisation's retention, in batches."""
    from apps.monitoring import alerting

    return alerting.retention_clean_all_orgs()
