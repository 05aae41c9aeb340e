"""Alert rules, raising / de-duplicating / resolving alerts, and rule evaluation.

Lifecycle of an alert (one open alert per ``fingerprint`` = type + service + target + key):

- ``alert_raise`` while an open alert with the fingerprint was seen within the organisation's
  ``dedupe_window_seconds`` bumps ``count`` and ``last_seen_at`` (and escalates the severity);
  an alert resolved automatically within that window is re-opened instead of creating a new
  one (a flapping condition stays one alert). Anything else creates a new alert.
- A new alert (or an escalation) sends ``apps.core.events.alert_raised`` after commit; the
  notification receiver turns it into in-app + WebSocket notifications for owners, admins and
  managers. High and critical alerts go out as *urgent* notifications (e-mail, the configured
  SMS numbers and every active robot webhook) unless the organisation switched
  ``notify_email`` off; medium ones as warnings, low ones as info (robots forward by their own
  minimum type). Every change pushes ``alert_update`` to the monitor WebSocket group.
- Conditions evaluated every tick (rules, failing checks, anomalies, offline accounts) call
  ``alert_condition_clear`` when they no longer hold: the alert resolves automatically once the
  condition has stayed clear for ``auto_resolve_seconds``. Event alerts (quota) resolve by hand.

Anomaly statistic (``anomaly_evaluate``): for spend (ledger cost) and message volume
(conversation messages), x = the total of the last 60 minutes, and the baseline is the 168
hourly totals of the 7 days before that hour (hours without rows count as 0). With mean μ and
population standard deviation σ of the baseline, z = (x − μ) / max(σ, 0.1·μ, ε), the floor
keeping a perfectly flat baseline from turning any change into an infinite score. An anomaly
(severity medium) fires when z ≥ ``anomaly_z_threshold`` (default 3.0, roughly "above 99.9 %
of a normal baseline") and the organisation has at least ``anomaly_min_hours`` of history.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core import events, realtime
from apps.core.exceptions import NotFoundError
from apps.monitoring import metrics
from apps.monitoring.models import Alert, AlertRule, HealthSample, MonitoringConfig
from apps.orgs.models import Organization

logger = logging.getLogger(__name__)

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
    changed = []
    for name, value in fields.items():
        if name not in CONFIG_FIELDS:
            raise ValueError(name)
        setattr(config, name, value)
        changed.append(name)
    config.full_clean()
    config.save(update_fields=[*changed, "updated_at"])
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


# -- raising and resolving ---------------------------------------------------------------------


def fingerprint_for(alert_type: str, service: str, target: str = "", key: str = "") -> str:
    raw = "|".join([alert_type, service, target or "", key or ""])
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


def alert_payload(alert: Alert) -> dict[str, Any]:
    """The seed's alert shape (the API's list items and the ``alert_update`` push)."""
    return {
        "id": alert.id,
        "alert_id": alert.fingerprint,
        "service_name": metrics.service_name(alert.service),
        "service": alert.service,
        "target": alert.target,
        "alert_type": alert.type,
        "severity": alert.severity,
        "title": alert.title,
        "message": alert.message,
        "timestamp": alert.last_seen_at,
        "first_seen": alert.first_seen_at,
        "last_seen": alert.last_seen_at,
        "count": alert.count,
        "resolved": alert.resolved_at is not None,
        "resolved_at": alert.resolved_at,
        "resolved_by": alert.resolved_by_id,
        "resolution": alert.resolution,
        "metadata": alert.metadata,
    }


def _json_safe(data: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def _notification_severity(alert: Alert, config: MonitoringConfig) -> str:
    """The notification receiver's vocabulary (critical -> urgent, error, warning, info)."""
    if alert.severity in (Severity.HIGH, Severity.CRITICAL):
        return "critical" if config.notify_email else "error"
    return "warning" if alert.severity == Severity.MEDIUM else "info"


def _after_commit_push(alert: Alert, *, notify: bool, config: MonitoringConfig) -> None:
    payload = alert_payload(alert)
    org_id, alert_id = alert.org_id, alert.id
    signal_kwargs = {
        "org_id": org_id,
        "alert_id": alert_id,
        "severity": _notification_severity(alert, config),
        "title": alert.title,
        "message": alert.message,
        "alert_severity": alert.severity,
        "alert_type": alert.type,
        "service": alert.service,
        "target": alert.target,
        "source": (alert.metadata or {}).get("source", ""),
    }

    def after_commit() -> None:
        realtime.push("alert_update", payload, groups=[realtime.group_for_monitor(org_id)])
        if notify:
            events.alert_raised.send(sender=Alert, **signal_kwargs)

    transaction.on_commit(after_commit)


def alert_raise(
    *,
    org: Organization | int,
    alert_type: str,
    severity: str,
    service: str,
    title: str,
    message: str = "",
    target: str = "",
    key: str = "",
    metadata: dict[str, Any] | None = None,
    source: str = "event",
    now: datetime | None = None,
) -> Alert:
    """Raise (or re-see) an alert; see the module docstring for de-duplication."""
    org_id = getattr(org, "pk", org)
    now = now or timezone.now()
    fingerprint = fingerprint_for(alert_type, service, target, key)
    for _attempt in range(3):
        try:
            with transaction.atomic():
                return _alert_raise_once(
                    org_id=org_id,
                    alert_type=alert_type,
                    severity=severity,
                    service=service,
                    title=title,
                    message=message,
                    target=target,
                    fingerprint=fingerprint,
                    metadata=_json_safe({**(metadata or {}), "source": source}),
                    now=now,
                )
        except IntegrityError:
            # Two workers raised the same new alert at once: the loser bumps the winner's.
            continue
    raise RuntimeError("could not raise alert")  # pragma: no cover - three lost races in a row


def _alert_raise_once(
    *,
    org_id: int,
    alert_type: str,
    severity: str,
    service: str,
    title: str,
    message: str,
    target: str,
    fingerprint: str,
    metadata: dict[str, Any],
    now: datetime,
) -> Alert:
    config = config_get(org=org_id)
    window_start = now - timedelta(seconds=config.dedupe_window_seconds)
    alert = (
        Alert.objects.select_for_update()
        .filter(org_id=org_id, fingerprint=fingerprint, resolved_at__isnull=True)
        .first()
    )
    if alert is not None and alert.last_seen_at < window_start:
        # Open but not seen for a whole window: close it and start a new episode.
        alert.resolved_at = now
        alert.resolution = "stale"
        alert.save(update_fields=["resolved_at", "resolution", "updated_at"])
        alert = None
    notify = False
    if alert is None:
        alert = (
            Alert.objects.select_for_update()
            .filter(
                org_id=org_id,
                fingerprint=fingerprint,
                resolved_at__gte=window_start,
                resolved_by__isnull=True,
            )
            .exclude(resolution="stale")
            .order_by("-resolved_at")
            .first()
        )
        if alert is not None:
            alert.resolved_at = None
            alert.resolution = ""
    if alert is None:
        alert = Alert(
            org_id=org_id,
            type=alert_type,
            severity=severity,
            service=service,
            target=target,
            title=title[:200],
            message=message,
            metadata=metadata,
            fingerprint=fingerprint,
            first_seen_at=now,
            last_seen_at=now,
        )
        alert.full_clean(validate_constraints=False)
        alert.save()
        _after_commit_push(alert, notify=True, config=config)
        return alert
    if Alert.SEVERITY_RANK[severity] > Alert.SEVERITY_RANK[alert.severity]:
        notify = True  # An escalation is news; a repeat at the same level is not.
    alert.severity = severity
    alert.title = title[:200]
    alert.message = message
    alert.metadata = metadata
    alert.last_seen_at = max(alert.last_seen_at, now)
    alert.count += 1
    alert.clear_since = None
    alert.full_clean(validate_constraints=False)
    alert.save(
        update_fields=[
            "severity",
            "title",
            "message",
            "metadata",
            "last_seen_at",
            "count",
            "clear_since",
            "resolved_at",
            "resolution",
            "updated_at",
        ]
    )
    _after_commit_push(alert, notify=notify, config=config)
    return alert


@transaction.atomic
def alert_condition_clear(
    *, org: Organization | int, fingerprint: str, now: datetime | None = None
) -> Alert | None:
    """The alert's condition does not hold now: start (or continue) the clear period and
    resolve the alert once it has lasted ``auto_resolve_seconds``."""
    org_id = getattr(org, "pk", org)
    now = now or timezone.now()
    alert = (
        Alert.objects.select_for_update()
        .filter(org_id=org_id, fingerprint=fingerprint, resolved_at__isnull=True)
        .first()
    )
    if alert is None:
        return None
    config = config_get(org=org_id)
    if alert.clear_since is None:
        alert.clear_since = now
    if (now - alert.clear_since).total_seconds() >= config.auto_resolve_seconds:
        alert.resolved_at = now
        alert.resolution = "auto"
        alert.save(update_fields=["clear_since", "resolved_at", "resolution", "updated_at"])
        _after_commit_push(alert, notify=False, config=config)
    else:
        alert.save(update_fields=["clear_since", "updated_at"])
    return alert


@transaction.atomic
def alert_resolve(*, org: Organization, alert_id: int, user=None, note: str = "") -> Alert:
    """Resolve by hand (API or admin). Resolving a resolved alert changes nothing."""
    alert = Alert.objects.select_for_update().filter(org=org, id=alert_id).first()
    if alert is None:
        raise NotFoundError(_("Alert not found."))
    if alert.resolved_at is None:
        alert.resolved_at = timezone.now()
        alert.resolved_by = user
        alert.resolution = (note or "manual")[:200]
        alert.save(update_fields=["resolved_at", "resolved_by", "resolution", "updated_at"])
        _after_commit_push(alert, notify=False, config=config_get(org=org))
    return alert


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


# -- domain events -> alerts ------------------------------------------------------------------

_ACCOUNT_DOWN = {"offline": Severity.HIGH, "risk_controlled": Severity.CRITICAL}
_ACCOUNT_DOWN["banned"] = Severity.CRITICAL


def on_account_status_changed(
    sender, *, org_id, account_id, from_status, to_status, reason="", **_kwargs
):
    """``service_down`` when an account goes offline / risk-controlled / banned (a deliberate
    logout is not an outage); back online, the alert resolves through the clear period."""
    try:
        severity = _ACCOUNT_DOWN.get(str(to_status))
        if severity is None:
            return
        from apps.wechat_accounts.models import WeChatAccount

        account = WeChatAccount.objects.filter(org_id=org_id, id=account_id).first()
        if account is None:
            return
        alert_raise(
            org=org_id,
            alert_type=AlertType.SERVICE_DOWN,
            severity=severity,
            service=metrics.ACCOUNT_SERVICE,
            target=f"account:{account_id}",
            title=_("WeChat account %(name)s is %(status)s")
            % {"name": account.name, "status": to_status},
            message=reason or "",
            metadata={"from_status": from_status, "to_status": to_status, "reason": reason},
            source="account",
        )
    except Exception:  # noqa: BLE001 - an alert must never break the sender's work.
        logger.exception("account status alert failed")


def on_budget_threshold_crossed(sender, *, org_id, budget_id, threshold, period, **kwargs):
    """``quota_exceeded`` (high) at 100 %; earlier thresholds are ``threshold`` alerts (medium
    at 95 %, low below). One alert per budget, threshold and period."""
    try:
        threshold = int(threshold)
        if threshold >= 100:
            alert_type, severity = AlertType.QUOTA_EXCEEDED, Severity.HIGH
            title = _("Budget exhausted")
        else:
            alert_type = AlertType.THRESHOLD
            severity = Severity.MEDIUM if threshold >= 95 else Severity.LOW
            title = _("Budget %(t)s%% used") % {"t": threshold}
        used, limit = kwargs.get("used"), kwargs.get("limit")
        alert_raise(
            org=org_id,
            alert_type=alert_type,
            severity=severity,
            service="billing",
            target=f"budget:{budget_id}",
            key=f"{threshold}:{period}",
            title=title,
            message=_("%(used)s of %(limit)s used in %(period)s.")
            % {"used": used, "limit": limit, "period": period},
            metadata={
                "budget_id": budget_id,
                "threshold": threshold,
                "period": period,
                "used": str(used),
                "limit": str(limit),
                "blocked": bool(kwargs.get("blocked")),
            },
            source="budget",
        )
    except Exception:  # noqa: BLE001
        logger.exception("budget alert failed")


def connect_receivers() -> None:
    events.account_status_changed.connect(
        on_account_status_changed, dispatch_uid="monitoring-alert-account"
    )
    events.budget_threshold_crossed.connect(
        on_budget_threshold_crossed, dispatch_uid="monitoring-alert-budget"
    )


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
