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
