"""Celery tasks of the reports app: thin, idempotent, ids only."""

from __future__ import annotations

import datetime as dt

from celery import shared_task
from django.conf import settings
from django.utils import timezone


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
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


@shared_task
def reports_rebuild_recent_all_orgs() -> int:
    """Nightly safety net: one ``reports_rebuild_recent`` per organisation."""
    from apps.orgs.models import Organization

    org_ids = list(Organization.objects.values_list("id", flat=True))
    for org_id in org_ids:
        reports_rebuild_recent.apply_async(kwargs={"org_id": org_id}, expires=6 * 3600)
    return len(org_ids)


@shared_task(acks_late=True, time_limit=600, soft_time_limit=540)
def reports_rebuild_recent(*, org_id: int) -> dict:
    """Rebuild the last ``REPORTS_REBUILD_RECENT_DAYS`` days of one organisation from the raw
    rows, repairing anything a lost mark missed."""
    from apps.orgs.models import Organization
    from apps.reports import services

    org = Organization.objects.filter(pk=org_id).first()
    if org is None:
        return {}
    today = services.local_day(org, timezone.now())
    start = today - dt.timedelta(days=settings.REPORTS_REBUILD_RECENT_DAYS - 1)
    return services.range_rebuild(org=org, start=start, end=today)
