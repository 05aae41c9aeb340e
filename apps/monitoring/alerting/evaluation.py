"""Evaluation each tick: rules, failing checks, offline accounts and the anomaly score."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.monitoring import metrics
from apps.monitoring.alerting.alerts import alert_condition_clear, alert_raise
from apps.monitoring.alerting.rules import (
    _RULE_FIELDS,
    _RULE_TYPES,
    EVALUATED_SOURCES,
    AlertType,
    Severity,
    _rule_for,
    config_get,
    rule_severity,
    rules_effective,
)
from apps.monitoring.models import Alert, AlertRule, HealthSample
from apps.orgs.models import Organization

# -- evaluation ----------------------------------------------------------------------------------


def _severity_text(severity: str) -> str:
    return {
        Severity.CRITICAL: _("critical"),
        Severity.HIGH: _("high"),
        Severity.MEDIUM: _("warning"),
        Severity.LOW: _("low"),
    }[severity]


def _rule_alert_text(service_name: str, metric: str, value: float, threshold: float, severity):
    level = _severity_text(severity)
    if metric == AlertRule.Metric.RESPONSE_TIME:
        return (
            _("%(service)s response time is high") % {"service": service_name},
            _("%(service)s response time %(value).2f s exceeds the %(level)s threshold %(t)s s.")
            % {"service": service_name, "value": value, "level": level, "t": threshold},
        )
    if metric == AlertRule.Metric.SUCCESS_RATE:
        return (
            _("%(service)s success rate is low") % {"service": service_name},
            _("%(service)s success rate %(value).1f%% is below the %(level)s threshold %(t)s%%.")
            % {"service": service_name, "value": value, "level": level, "t": threshold},
        )
    return (
        _("%(service)s error rate is high") % {"service": service_name},
        _("%(service)s error rate %(value).1f%% exceeds the %(level)s threshold %(t)s%%.")
        % {"service": service_name, "value": value, "level": level, "t": threshold},
    )


def rules_evaluate(*, org: Organization, now: datetime | None = None) -> set[str]:
    """Check every enabled rule against each target's call-log metrics over the evaluation
    window. Rate rules need ``min_requests`` calls; response time needs one. Returns the
    fingerprints that fire."""
    now = now or timezone.now()
    config = config_get(org=org)
    rules = rules_effective(org=org)
    since = now - timedelta(seconds=config.evaluation_window_seconds)
    stats = metrics.call_stats_by_target(org=org, since=since, until=now)
    names = metrics._target_names(org=org, targets={t for (_s, t) in stats if t})
    firing: set[str] = set()
    for (service, target), summary in stats.items():
        has_targets = any(s == service and t for (s, t) in stats)
        if not target and has_targets:
            continue  # Judged per target; the service total would double-alert.
        label = metrics.service_name(service)
        if target and names.get(target):
            label = f"{label} ({names[target]})"
        for metric, field in _RULE_FIELDS.items():
            rule = _rule_for(rules, service, metric)
            if rule is None:
                continue
            needed = 1 if metric == AlertRule.Metric.RESPONSE_TIME else config.min_requests
            value = summary[field] if summary["request_count"] >= needed else None
            severity = rule_severity(rule, value)
            if severity is None:
                continue
            threshold = rule.critical if severity == Severity.CRITICAL else rule.warning
            title, message = _rule_alert_text(label, metric, value, threshold, severity)
            alert = alert_raise(
                org=org,
                alert_type=_RULE_TYPES[metric],
                severity=severity,
                service=service,
                target=target,
                key=metric,
                title=title,
                message=message,
                metadata={
                    "metric": metric,
                    metric: value,
                    "threshold": threshold,
                    "request_count": summary["request_count"],
                    "window_seconds": config.evaluation_window_seconds,
                },
                source="rule",
                now=now,
            )
            firing.add(alert.fingerprint)
    return firing


def checks_evaluate(*, org: Organization, now: datetime | None = None) -> set[str]:
    """``service_down`` for every target whose last ``MONITORING_DOWN_AFTER_FAILURES``
    checks (recent ones) all failed, the platform's dependencies included."""
    now = now or timezone.now()
    config = config_get(org=org)
    needed = settings.MONITORING_DOWN_AFTER_FAILURES
    since = now - timedelta(seconds=max(600, (needed + 2) * config.interval_seconds))
    recent: dict[tuple[str, str], list[HealthSample]] = {}
    for sample in HealthSample.objects.filter(
        Q(org=org) | Q(org__isnull=True), at__gte=since, at__lte=now
    ).order_by("-at", "-id"):
        bucket = recent.setdefault((sample.service, sample.target), [])
        if len(bucket) < needed:
            bucket.append(sample)
    firing: set[str] = set()
    for (service, target), samples in recent.items():
        if len(samples) < needed or any(s.ok for s in samples):
            continue
        last = samples[0]
        name = last.target_name or metrics.service_name(service)
        alert = alert_raise(
            org=org,
            alert_type=AlertType.SERVICE_DOWN,
            severity=Severity.CRITICAL,
            service=service,
            target=target,
            title=_("%(name)s is down") % {"name": name},
            message=_("%(count)d consecutive checks of %(name)s failed: %(error)s")
            % {"count": needed, "name": name, "error": last.error or _("no answer")},
            metadata={"error": last.error, "failed_checks": needed, "checked_at": last.at},
            source="check",
            now=now,
        )
        firing.add(alert.fingerprint)
    return firing


def accounts_evaluate(*, org: Organization, now: datetime | None = None) -> set[str]:
    """Account ``service_down`` alerts stay firing while the account is not online."""
    from apps.wechat_accounts.models import WeChatAccount

    open_alerts = Alert.objects.filter(
        org=org,
        resolved_at__isnull=True,
        type=AlertType.SERVICE_DOWN,
        service=metrics.ACCOUNT_SERVICE,
        metadata__source="account",
    ).values_list("fingerprint", "target")
    ids = {fp: metrics.parse_target(target)[1] for fp, target in open_alerts}
    online = set(
        WeChatAccount.objects.filter(
            org=org, id__in=[i for i in ids.values() if i], status=WeChatAccount.Status.ONLINE
        ).values_list("id", flat=True)
    )
    return {fp for fp, account_id in ids.items() if account_id not in online}


def anomaly_score(current: float, baseline: list[float]) -> float:
    """z = (x − μ) / max(σ, 0.1·μ, 1e-9) over the baseline (see the module docstring)."""
    if not baseline:
        return 0.0
    mean = sum(baseline) / len(baseline)
    std = math.sqrt(sum((v - mean) ** 2 for v in baseline) / len(baseline))
    return (current - mean) / max(std, 0.1 * mean, 1e-9)


def anomaly_evaluate(*, org: Organization, now: datetime | None = None) -> set[str]:
    from apps.billing.models import CostLedger
    from apps.conversations.models import Message

    now = now or timezone.now()
    config = config_get(org=org)
    hour_start = now - timedelta(hours=1)
    # Baseline: the 168 whole clock hours before the one the current window starts in,
    # summed by the database (TruncHour); hours without rows are zeros.
    base_end = hour_start.replace(minute=0, second=0, microsecond=0)
    base_start = base_end - timedelta(hours=168)
    series = {
        "spend": (CostLedger.objects.filter(org=org), Sum("cost")),
        "messages": (Message.objects.filter(org=org), Count("id")),
    }
    firing: set[str] = set()
    for name, (queryset, value) in series.items():
        current = float(
            queryset.filter(created_at__gte=hour_start, created_at__lt=now).aggregate(v=value)["v"]
            or 0
        )
        window = queryset.filter(created_at__gte=base_start, created_at__lt=base_end)
        first = window.order_by("created_at").values_list("created_at", flat=True).first()
        if first is None or current <= 0:
            continue
        history_hours = math.ceil((base_end - first).total_seconds() / 3600)
        if history_hours < config.anomaly_min_hours:
            continue
        totals = {
            row["hour"]: float(row["v"] or 0)
            for row in window.order_by()
            .annotate(hour=TruncHour("created_at"))
            .values("hour")
            .annotate(v=value)
            .values("hour", "v")
        }
        baseline = [
            totals.get(base_end - timedelta(hours=i + 1), 0.0)
            for i in range(min(168, history_hours))
        ]
        z = anomaly_score(current, baseline)
        if z < config.anomaly_z_threshold:
            continue
        mean = sum(baseline) / len(baseline)
        label = _("Spend") if name == "spend" else _("Message volume")
        alert = alert_raise(
            org=org,
            alert_type=AlertType.ANOMALY,
            severity=Severity.MEDIUM,
            service="billing" if name == "spend" else "conversations",
            key=name,
            title=_("%(what)s is unusually high") % {"what": label},
            message=_(
                "%(what)s in the last hour is %(value).2f against an hourly average of "
                "%(mean).2f over the last 7 days (z-score %(z).1f)."
            )
            % {"what": label, "value": current, "mean": mean, "z": z},
            metadata={
                "metric": name,
                "value": round(current, 4),
                "baseline_mean": round(mean, 4),
                "z_score": round(z, 2),
                "threshold": config.anomaly_z_threshold,
            },
            source="anomaly",
            now=now,
        )
        firing.add(alert.fingerprint)
    return firing


def evaluate_org(
    *, org: Organization, now: datetime | None = None, anomalies: bool = True
) -> dict[str, int]:
    """One evaluation round: rules, checks, accounts (and anomalies); open evaluated alerts
    whose condition no longer fires move towards auto-resolution."""
    now = now or timezone.now()
    firing = rules_evaluate(org=org, now=now)
    firing |= checks_evaluate(org=org, now=now)
    firing |= accounts_evaluate(org=org, now=now)
    sources = list(EVALUATED_SOURCES)
    if anomalies:
        firing |= anomaly_evaluate(org=org, now=now)
    else:
        sources.remove("anomaly")
    cleared = 0
    for fingerprint in (
        Alert.objects.filter(org=org, resolved_at__isnull=True, metadata__source__in=sources)
        .exclude(fingerprint__in=firing)
        .values_list("fingerprint", flat=True)
    ):
        alert = alert_condition_clear(org=org, fingerprint=fingerprint, now=now)
        cleared += 1 if alert is not None and alert.resolved_at else 0
    return {"firing": len(firing), "resolved": cleared}
