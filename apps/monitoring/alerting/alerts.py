"""Raising, de-duplicating and resolving alerts (one open alert per fingerprint)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core import events, realtime
from apps.core.exceptions import NotFoundError
from apps.monitoring import metrics
from apps.monitoring.alerting.rules import Severity, config_get
from apps.monitoring.models import Alert, MonitoringConfig
from apps.orgs.models import Organization

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
