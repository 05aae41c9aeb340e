"""Retention of samples and alerts, and today's cost."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Sum
from django.utils import timezone

from apps.monitoring.models import Alert, HealthSample, MonitoringConfig
from apps.orgs.models import Organization

# -- retention ---------------------------------------------------------------------------------


def retention_clean_all_orgs(*, now: datetime | None = None, batch: int | None = None) -> dict:
    """Delete samples and resolved alerts past each organisation's retention, in batches of
    ``MONITORING_RETENTION_BATCH`` rows (platform samples use the default 7 days)."""
    now = now or timezone.now()
    batch = batch or settings.MONITORING_RETENTION_BATCH
    deleted = {"samples": 0, "alerts": 0}
    default_days = MonitoringConfig._meta.get_field("sample_retention_days").default
    configs = {c.org_id: c for c in MonitoringConfig.objects.all()}
    plans = [(None, default_days, None)]
    for org_id in Organization.objects.values_list("id", flat=True):
        config = configs.get(org_id)
        plans.append(
            (
                org_id,
                config.sample_retention_days if config else default_days,
                config.alert_retention_days if config else 30,
            )
        )
    for org_id, sample_days, alert_days in plans:
        cutoff = now - timedelta(days=sample_days)
        if org_id is None:
            samples = HealthSample.objects.filter(org__isnull=True, at__lt=cutoff)
        else:
            samples = HealthSample.objects.filter(org_id=org_id, at__lt=cutoff)
        deleted["samples"] += _delete_in_batches(samples, batch)
        if alert_days is not None:
            alerts = Alert.objects.filter(
                org_id=org_id,
                resolved_at__isnull=False,
                resolved_at__lt=now - timedelta(days=alert_days),
            )
            deleted["alerts"] += _delete_in_batches(alerts, batch)
    return deleted


def _delete_in_batches(queryset, batch: int) -> int:
    total = 0
    model = queryset.model
    while True:
        ids = list(queryset.values_list("id", flat=True)[:batch])
        if not ids:
            return total
        count, _details = model.objects.filter(id__in=ids).delete()
        total += count


def cost_today(*, org: Organization, now: datetime | None = None) -> Decimal:
    """The organisation's ledger cost since local midnight (dashboard)."""
    from apps.billing.models import CostLedger

    now = now or timezone.now()
    local = timezone.localtime(now, org.tzinfo)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return CostLedger.objects.filter(
        org=org, created_at__gte=midnight, created_at__lt=now
    ).aggregate(v=Sum("cost"))["v"] or Decimal("0")
