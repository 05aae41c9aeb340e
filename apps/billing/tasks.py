"""Tasks of the billing app (thin: they take ids and call one service)."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.billing import selectors, services
from apps.orgs.models import Organization

logger = logging.getLogger(__name__)


@shared_task(expires=55)
def reservations_expire_all_orgs() -> int:
    """Beat entry: fan out one expiry task per organisation that has stale holds."""
    org_ids = selectors.org_ids_with_stale_reservations_all_orgs()
    for org_id in org_ids:
        reservations_expire.delay(org_id=org_id)
    return len(org_ids)


@shared_task(time_limit=60, soft_time_limit=50)
def reservations_expire(*, org_id: int) -> int:
    org = Organization.objects.filter(id=org_id).first()
    if org is None:
        logger.info("billing: organisation %s is gone; nothing to expire", org_id)
        return 0
    return services.reservations_expire(org=org)
