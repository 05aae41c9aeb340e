"""Monitoring configuration and alert rules: defaults, effective rules, severities."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from apps.core.services import model_update
from apps.monitoring.models import Alert, AlertRule, MonitoringConfig
from apps.orgs.models import Organization

Severity = Alert.Severity
AlertType = Alert.Type
# Sources of open alerts whose condition the tick re-evaluates (others resolve by hand).
EVALUATED_SOURCES = ("rule", "check", "anomaly", "account")
_RULE_TYPES = {
    AlertRule.Metric.RESPONSE_TIME: AlertType.HIGH_RESPONSE_TIME,
    AlertRule.Metric.SUCCESS_RATE: AlertType.LOW_SUCCESS_RATE,
    AlertRule.Metric.ERROR_RATE: AlertType.THRESHOLD,
}
_RULE_FIELDS = {
    AlertRule.Metric.RESPONSE_TIME: "avg_response_time",
    AlertRule.Metric.SUCCESS_RATE: "success_rate",
    AlertRule.Metric.ERROR_RATE: "error_rate",
}


# -- configuration and rules -------------------------------------------------------------------


def config_get(*, org: Organization | int) -> MonitoringConfig:
    """The organisation's monitoring configuration (created with the defaults on first use)."""
    org_id = getattr(org, "pk", org)
    config = MonitoringConfig.objects.filter(org_id=org_id).first()
    if config is None:
        try:
            with transaction.atomic():
                config = MonitoringConfig.objects.create(org_id=org_id)
        except IntegrityError:
            config = MonitoringConfig.objects.get(org_id=org_id)
    return config


CONFIG_FIELDS = (
    "enabled",
    "interval_seconds",
    "ai_live_checks",
    "ai_check_interval_seconds",
    "sample_retention_days",
    "alert_retention_days",
    "dedupe_window_seconds",
    "auto_resolve_seconds",
    "evaluation_window_seconds",
    "min_requests",
    "anomaly_z_threshold",
    "anomaly_min_hours",
    "notify_email",
)


@transaction.atomic
def config_update(*, org: Organization, **fields: Any) -> MonitoringConfig:
    config_get(org=org)
    config = MonitoringConfig.objects.select_for_update().get(org=org)
    unknown = set(fields) - set(CONFIG_FIELDS)
    if unknown:
        raise ValueError(", ".join(sorted(unknown)))
    model_update(instance=config, data=fields)
    return config


def monitoring_set_enabled(*, org: Organization, enabled: bool) -> MonitoringConfig:
    """``start`` / ``stop``: switch the organisation's checks and rule evaluation."""
    return config_update(org=org, enabled=enabled)


def rules_ensure_defaults(*, org: Organization | int) -> None:
    """Create the seed's ``*`` rules once (an organisation may edit or add per-service ones)."""
    org_id = getattr(org, "pk", org)
    existing = set(
        AlertRule.objects.filter(org_id=org_id, service=AlertRule.ALL_SERVICES).values_list(
            "metric", flat=True
        )
    )
    missing = [
        AlertRule(
            org_id=org_id,
            service=AlertRule.ALL_SERVICES,
            metric=metric,
            warning=warning,
            critical=critical,
        )
        for metric, (warning, critical) in AlertRule.DEFAULTS.items()
        if metric not in existing
    ]
    if missing:
        AlertRule.objects.bulk_create(missing, ignore_conflicts=True)


def rules_effective(*, org: Organization | int) -> dict[tuple[str, str], AlertRule]:
    """``{(service, metric): rule}`` including ``("*", metric)``."""
    rules_ensure_defaults(org=org)
    return {
        (rule.service, rule.metric): rule
        for rule in AlertRule.objects.filter(org_id=getattr(org, "pk", org))
    }


def _rule_for(rules: dict, service: str, metric: str) -> AlertRule | None:
    rule = rules.get((service, metric)) or rules.get((AlertRule.ALL_SERVICES, metric))
    return rule if rule is not None and rule.enabled else None


@transaction.atomic
def rule_upsert(
    *, org: Organization, service: str, metric: str, warning: float, critical: float, enabled: bool
) -> AlertRule:
    rule = AlertRule.objects.select_for_update().filter(org=org, service=service, metric=metric)
    rule = rule.first() or AlertRule(org=org, service=service, metric=metric)
    rule.warning, rule.critical, rule.enabled = warning, critical, enabled
    rule.full_clean(validate_constraints=False)
    rule.save()
    return rule


def rule_severity(rule: AlertRule, value: float | None) -> str | None:
    """``critical`` past the critical threshold, ``medium`` past the warning one (the seed's
    CRITICAL/MEDIUM), else None."""
    if value is None:
        return None
    if rule.fires_below:
        if value < rule.critical:
            return Severity.CRITICAL
        if value < rule.warning:
            return Severity.MEDIUM
        return None
    if value > rule.critical:
        return Severity.CRITICAL
    if value > rule.warning:
        return Severity.MEDIUM
    return None
