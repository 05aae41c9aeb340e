"""Celery tasks of the sop app: thin, idempotent, taking ids."""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings

from apps.sop import services
from apps.sop.models import SopPlan

logger = logging.getLogger(__name__)


@shared_task
def sop_tick_all_orgs() -> int:
    """Beat entry point (every ``SOP_TICK_SECONDS``): one tick task per organisation with
    work; each expires before the next beat so a backlog never replays."""
    org_ids = services.orgs_with_due_deliveries()
    for org_id in org_ids:
        sop_tick.apply_async(kwargs={"org_id": org_id}, expires=settings.SOP_TICK_SECONDS)
    return len(org_ids)


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def sop_tick(*, org_id: int) -> dict:
    """Claim and hand over due deliveries of one organisation, at most
    ``SOP_TICK_MAX_BATCHES`` batches (the rest waits for the next beat)."""
    total: dict = {}
    for _i in range(settings.SOP_TICK_MAX_BATCHES):
        result = services.sop_tick(org_id=org_id).as_dict()
        for key, value in result.items():
            if isinstance(value, int):
                total[key] = total.get(key, 0) + value
        if result["claimed"] < settings.SOP_TICK_BATCH:
            break
    return total


@shared_task(acks_late=True, soft_time_limit=240, time_limit=300)
def sop_run_start(*, org_id: int, plan_id: int) -> int | None:
    """Called by the plan's django-celery-beat entry at each cron fire time (idempotent per
    occurrence)."""
    if not SopPlan.objects.filter(org_id=org_id, pk=plan_id).exists():
        logger.info("sop: plan %s of org %s is gone", plan_id, org_id)
        return None
    run = services.sop_run_start(org_id=org_id, plan_id=plan_id)
    return run.pk if run else None


@shared_task(acks_late=True)
def sop_contact_added(*, org_id: int, contact_id: int) -> int:
    return services.contact_added(org_id=org_id, contact_id=contact_id)


@shared_task(acks_late=True)
def sop_tag_applied(*, org_id: int, contact_id: int, tag_id: int) -> int:
    return services.tag_applied(org_id=org_id, contact_id=contact_id, tag_id=tag_id)
