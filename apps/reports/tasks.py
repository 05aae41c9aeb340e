"""Celery tasks of the reports app: thin, idempotent, ids only."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone


@shared_task(acks_late=True, time_limit=900, soft_time_limit=840)
def reports_refresh(*, org_id: int) -> dict:
    """Recompute what changed in one organisation since the last refresh."""
    from apps.reports import services

    return services.dirty_refresh(org_id=org_id)


@shared_task
def reports_refresh_all_orgs() -> int:
    """Beat: one ``reports_refresh`` per organisation with changes; SOP figures of deliveries
    that changed recently (their status moves by bulk update, without signals)."""
    from apps.reports import services

    org_ids = services.dirty_orgs_list()
    for org_id in org_ids:
        reports_refresh.apply_async(kwargs={"org_id": org_id}, expires=300)
    window = dt.timedelta(seconds=settings.REPORTS_SOP_LOOKBACK_SECONDS)
    services.sop_recent_refresh(since=timezone.now() - window)
    return len(org_ids)


@shared_task(acks_late=True, time_limit=3600)
def reports_rebuild_recent(*, org_id: int | None = None) -> int:
    """Nightly safety net: rebuild the last ``REPORTS_REBUILD_RECENT_DAYS`` days of every
    organisation (or one) from the raw rows, repairing anything a lost mark missed."""
    from apps.orgs.models import Organization
    from apps.reports import services

    orgs = Organization.objects.all() if org_id is None else Organization.objects.filter(pk=org_id)
    count = 0
    for org in orgs:
        today = services.local_day(org, timezone.now())
        start = today - dt.timedelta(days=settings.REPORTS_REBUILD_RECENT_DAYS - 1)
        services.range_rebuild(org=org, start=start, end=today)
        count += 1
    return count
