"""Alert rules, de-duplication, auto-resolution, anomalies, event alerts, notifications and
retention (apps.monitoring.alerting)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.utils import timezone

from apps.billing import services as billing
from apps.core import events
from apps.monitoring import alerting
from apps.monitoring.models import Alert, AlertRule, HealthSample, MonitoringConfig, Notification
from apps.orgs.models import Role
from apps.wechat_accounts import services as accounts
from apps.wechat_accounts.models import WeChatAccount
from tests.billing.factories import BudgetFactory, ModelPriceFactory
from tests.integrations.factories import IntegrationCallFactory, PlatformConnectionFactory
from tests.wechat_accounts.factories import WeChatAccountFactory

pytestmark = pytest.mark.django_db


def _calls(org, *, n, ok=True, latency_ms=100, service="gewe", connection=None, at=None):
    for _ in range(n):
        IntegrationCallFactory(
            org=org,
            service=service,
            ok=ok,
            latency_ms=latency_ms,
            connection=connection,
            at=at or timezone.now() - dt.timedelta(seconds=30),
        )


def _open(org, **filters):
    return Alert.objects.filter(org=org, resolved_at__isnull=True, **filters)


def test_default_rules_are_the_seeds(org):
    rules = alerting.rules_effective(org=org)
    assert {(m, r.warning, r.critical) for (s, m), r in rules.items() if s == "*"} == {
        ("response_time", 5.0, 10.0),
        ("success_rate", 90.0, 80.0),
        ("error_rate", 5.0, 10.0),
    }
    alerting.rules_ensure_defaults(org=org)  # idempotent
    assert AlertRule.objects.filter(org=org).count() == 3


@pytest.mark.parametrize(
    ("metric", "value", "expected"),
    [
        ("response_time", 4.9, None),
        ("response_time", 6.2, "medium"),
        ("response_time", 10.5, "critical"),
        ("success_rate", 95.0, None),
        ("success_rate", 85.0, "medium"),
        ("success_rate", 79.0, "critical"),
        ("error_rate", 4.0, None),
        ("error_rate", 7.0, "medium"),
        ("error_rate", 12.0, "critical"),
    ],
)
def test_rule_severity_each_way(org, metric, value, expected):
    rule = alerting.rules_effective(org=org)[("*", metric)]
    assert alerting.rule_severity(rule, value) == expected


def test_slow_calls_raise_then_clear_and_auto_resolve(org):
    connection = PlatformConnectionFactory(org=org)
    MonitoringConfig.objects.filter(org=alerting.config_get(org=org).org).update(
        auto_resolve_seconds=60
    )
    _calls(org, n=3, latency_ms=6200, connection=connection)
    alerting.evaluate_org(org=org, anomalies=False)
    alert = _open(org, type="high_response_time").get()
    assert alert.severity == "medium"
    assert alert.target == f"connection:{connection.id}"
    assert alert.metadata["response_time"] == 6.2 and alert.metadata["threshold"] == 5.0

    # Slower: the same alert escalates to critical (no new row).
    _calls(org, n=20, latency_ms=15000, connection=connection)
    alerting.evaluate_org(org=org, anomalies=False)
    alert.refresh_from_db()
    assert (alert.severity, alert.count) == ("critical", 2)
    assert Alert.objects.filter(org=org).count() == 1

    # The window moves on without slow calls: clear, then resolved after the clear period.
    later = timezone.now() + dt.timedelta(minutes=10)
    alerting.evaluate_org(org=org, now=later, anomalies=False)
    alert.refresh_from_db()
    assert alert.resolved_at is None and alert.clear_since == later
    alerting.evaluate_org(org=org, now=later + dt.timedelta(seconds=61), anomalies=False)
    alert.refresh_from_db()
    assert alert.resolved_at is not None and alert.resolution == "auto"


def test_a_condition_that_returns_during_the_clear_period_keeps_the_alert_open(org):
    alerting.alert_raise(
        org=org,
        alert_type="service_down",
        severity="critical",
        service="redis",
        title="Redis down",
        source="check",
    )
    alert = _open(org).get()
    now = timezone.now()
    alerting.alert_condition_clear(org=org, fingerprint=alert.fingerprint, now=now)
    alerting.alert_raise(
        org=org,
        alert_type="service_down",
        severity="critical",
        service="redis",
        title="Redis down",
        source="check",
        now=now + dt.timedelta(seconds=5),
    )
    alert.refresh_from_db()
    assert alert.clear_since is None and alert.count == 2
    alerting.alert_condition_clear(org=org, fingerprint=alert.fingerprint, now=now)
    alert.refresh_from_db()
    assert alert.resolved_at is None  # the clear period starts again


def test_low_success_rate_needs_min_requests_and_fires_below_threshold(org):
    connection = PlatformConnectionFactory(org=org)
    _calls(org, n=4, ok=False, connection=connection)
    alerting.evaluate_org(org=org, anomalies=False)
    assert not _open(org, type="low_success_rate").exists()  # 4 < min_requests (5)
    _calls(org, n=1, ok=True, connection=connection)
    alerting.evaluate_org(org=org, anomalies=False)
    alert = _open(org, type="low_success_rate").get()
    assert alert.severity == "critical" and alert.metadata["success_rate"] == 20.0
    assert _open(org, type="threshold", metadata__metric="error_rate").exists()


def test_healthy_calls_raise_nothing(org):
    _calls(org, n=20, ok=True, latency_ms=300)
    assert alerting.evaluate_org(org=org, anomalies=False)["firing"] == 0
    assert not Alert.objects.filter(org=org).exists()


def test_per_service_rule_overrides_the_default(org):
    alerting.rule_upsert(
        org=org, service="gewe", metric="response_time", warning=0.1, critical=0.5, enabled=True
    )
    _calls(org, n=2, latency_ms=300)
    alerting.evaluate_org(org=org, anomalies=False)
    assert _open(org, type="high_response_time", service="gewe").get().severity == "medium"


def test_dedupe_within_window_bumps_count_and_new_episode_after(org):
    kwargs = dict(org=org, alert_type="threshold", severity="low", service="x", title="t")
    now = timezone.now()
    first = alerting.alert_raise(**kwargs, now=now)
    second = alerting.alert_raise(**kwargs, now=now + dt.timedelta(minutes=30))
    assert first.id == second.id and second.count == 2
    # Open but unseen for more than the window (1 h): the old episode closes, a new one opens.
    third = alerting.alert_raise(**kwargs, now=now + dt.timedelta(hours=2))
    assert third.id != first.id
    first.refresh_from_db()
    assert first.resolution == "stale"
    assert _open(org).count() == 1


def test_auto_resolved_alert_reopens_within_window_instead_of_duplicating(org):
    kwargs = dict(
        org=org,
        alert_type="service_down",
        severity="critical",
        service="redis",
        title="t",
        source="check",
    )
    alert = alerting.alert_raise(**kwargs)
    MonitoringConfig.objects.filter(org=org).update(auto_resolve_seconds=0)
    alerting.alert_condition_clear(org=org, fingerprint=alert.fingerprint)
    alert.refresh_from_db()
    assert alert.resolution == "auto"
    again = alerting.alert_raise(**kwargs)
    assert again.id == alert.id and again.resolved_at is None and again.count == 2


def test_manual_resolve_and_other_org_is_not_found(org, other_org, member):
    alert = alerting.alert_raise(
        org=org, alert_type="threshold", severity="low", service="x", title="t"
    )
    with pytest.raises(Exception) as exc:
        alerting.alert_resolve(org=other_org, alert_id=alert.id)
    assert exc.value.__class__.__name__ == "NotFoundError"
    resolved = alerting.alert_resolve(org=org, alert_id=alert.id, user=member)
    assert resolved.resolved_by == member and resolved.resolution == "manual"
    assert alerting.alert_resolve(org=org, alert_id=alert.id).resolved_at == resolved.resolved_at


def test_failed_checks_raise_service_down_and_recovery_resolves(org, other_org, settings):
    settings.MONITORING_DOWN_AFTER_FAILURES = 2
    MonitoringConfig.objects.filter(org=alerting.config_get(org=org).org).update(
        auto_resolve_seconds=0
    )
    now = timezone.now()
    for seconds in (60, 30):
        HealthSample.objects.create(
            org=org,
            service="gewe",
            target="connection:1",
            target_name="Main",
            ok=False,
            error="boom",
            at=now - dt.timedelta(seconds=seconds),
        )
    alerting.evaluate_org(org=org, now=now, anomalies=False)
    alert = _open(org, type="service_down").get()
    assert alert.severity == "critical" and "Main" in alert.title
    alerting.evaluate_org(org=other_org, now=now, anomalies=False)
    assert not Alert.objects.filter(org=other_org).exists()  # another org's samples
    HealthSample.objects.create(org=org, service="gewe", target="connection:1", ok=True, at=now)
    alerting.evaluate_org(org=org, now=now + dt.timedelta(seconds=1), anomalies=False)
    alert.refresh_from_db()
    assert alert.resolved_at is not None


def test_platform_samples_alert_every_org(org, other_org, settings):
    settings.MONITORING_DOWN_AFTER_FAILURES = 1
    HealthSample.objects.create(org=None, service="redis", ok=False, error="down")
    alerting.evaluate_org(org=org, anomalies=False)
    alerting.evaluate_org(org=other_org, anomalies=False)
    assert _open(org, service="redis").count() == 1
    assert _open(other_org, service="redis").count() == 1


# -- anomalies --------------------------------------------------------------------------------


def test_anomaly_score_on_synthetic_series():
    baseline = [10.0, 12.0, 8.0, 11.0, 9.0] * 30
    assert abs(alerting.anomaly_score(10.0, baseline)) < 0.5
    assert alerting.anomaly_score(30.0, baseline) > 3
    # A flat baseline uses the 10 % floor instead of dividing by zero.
    assert alerting.anomaly_score(20.0, [10.0] * 48) == pytest.approx(10.0)


def _ledger(org, when, cost, n):
    from apps.billing.models import CostLedger

    for i in range(n):
        CostLedger.objects.create(
            org=org,
            request_id=f"{when.isoformat()}-{i}-{cost}",
            provider="gewe",
            model="op",
            kind="platform",
            units=1,
            cost=Decimal(cost),
            created_at=when,
        )


def test_spend_anomaly_against_seven_days_by_hour(org, other_org):
    now = timezone.now().replace(minute=30, second=0, microsecond=0)
    for hours in range(2, 7 * 24):  # about 1.0 an hour (0.5 / 1.5 alternating) for a week
        _ledger(org, now - dt.timedelta(hours=hours), "0.50" if hours % 2 else "1.50", 1)
    alerting.anomaly_evaluate(org=org, now=now)
    assert not _open(org, type="anomaly").exists()
    _ledger(org, now - dt.timedelta(minutes=10), "1.20", 1)  # ordinary
    alerting.anomaly_evaluate(org=org, now=now)
    assert not _open(org, type="anomaly").exists()
    _ledger(org, now - dt.timedelta(minutes=5), "50.00", 1)  # far above the baseline
    alerting.anomaly_evaluate(org=org, now=now)
    alert = _open(org, type="anomaly").get()
    assert alert.severity == "medium" and alert.metadata["metric"] == "spend"
    assert alert.metadata["z_score"] >= 3
    alerting.anomaly_evaluate(org=other_org, now=now)
    assert not Alert.objects.filter(org=other_org).exists()


def test_anomaly_needs_history(org):
    now = timezone.now()
    _ledger(org, now - dt.timedelta(hours=3), "1.00", 1)
    _ledger(org, now - dt.timedelta(minutes=5), "500.00", 1)
    alerting.anomaly_evaluate(org=org, now=now)
    assert not Alert.objects.filter(org=org).exists()  # < 24 h of baseline


# -- events -----------------------------------------------------------------------------------


def test_quota_alerts_from_billing_thresholds(org, other_org, django_capture_on_commit_callbacks):
    ModelPriceFactory(
        provider="gewe",
        model="op",
        unit_price=Decimal("1"),
        input_price_per_1k=0,
        output_price_per_1k=0,
    )
    BudgetFactory(org=org, money_limit=Decimal("10"), action="warn")
    for i, units in enumerate([8, 2]):
        with django_capture_on_commit_callbacks(execute=True):
            billing.record_usage(
                org=org, provider="gewe", model="op", units=units, request_id=f"q{i}"
            )
    alerts = {a.type: a for a in Alert.objects.filter(org=org)}
    assert alerts["quota_exceeded"].severity == "high"
    assert alerts["threshold"].severity == "low"  # the 80 % threshold
    assert alerts["quota_exceeded"].service == "billing"
    assert not Alert.objects.filter(org=other_org).exists()


def test_account_down_alert_and_recovery(org, other_org, django_capture_on_commit_callbacks):
    account = WeChatAccountFactory(org=org, status=WeChatAccount.Status.ONLINE)
    MonitoringConfig.objects.filter(org=alerting.config_get(org=org).org).update(
        auto_resolve_seconds=0
    )
    with django_capture_on_commit_callbacks(execute=True):
        accounts.account_status_change(
            org=org, account_id=account.id, to_status="offline", reason="heartbeat lost"
        )
    alert = _open(org, type="service_down", service="wechat_account").get()
    assert alert.severity == "high" and alert.target == f"account:{account.id}"
    with django_capture_on_commit_callbacks(execute=True):
        accounts.account_status_change(org=org, account_id=account.id, to_status="banned")
    alert.refresh_from_db()
    assert alert.severity == "critical" and alert.count == 2
    alerting.evaluate_org(org=org, anomalies=False)
    assert _open(org).count() == 1  # still banned
    WeChatAccount.objects.filter(id=account.id).update(status="online")
    alerting.evaluate_org(org=org, anomalies=False)
    alert.refresh_from_db()
    assert alert.resolved_at is not None
    assert not Alert.objects.filter(org=other_org).exists()


def test_logout_is_not_an_outage(org, django_capture_on_commit_callbacks):
    account = WeChatAccountFactory(org=org, status=WeChatAccount.Status.ONLINE)
    with django_capture_on_commit_callbacks(execute=True):
        accounts.account_status_change(org=org, account_id=account.id, to_status="logged_out")
    assert not Alert.objects.filter(org=org).exists()


# -- notifications ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "notification_type", "emails"),
    [
        ("low", "info", 0),
        ("medium", "warning", 0),
        ("high", "urgent", 1),
        ("critical", "urgent", 1),
    ],
)
def test_notifications_per_severity(
    org,
    owner,
    make_member,
    outsider,
    severity,
    notification_type,
    emails,
    django_capture_on_commit_callbacks,
):
    make_member(Role.AGENT)  # agents are not told about alerts
    received = []
    events.alert_raised.connect(
        lambda sender, **kw: received.append(kw), weak=False, dispatch_uid="test-alert-signal"
    )
    try:
        with django_capture_on_commit_callbacks(execute=True):
            alert = alerting.alert_raise(
                org=org, alert_type="threshold", severity=severity, service="x", title="T"
            )
        with django_capture_on_commit_callbacks(execute=True):  # a repeat notifies nobody
            alerting.alert_raise(
                org=org, alert_type="threshold", severity=severity, service="x", title="T"
            )
    finally:
        events.alert_raised.disconnect(dispatch_uid="test-alert-signal")
    assert [(r["alert_id"], r["alert_severity"]) for r in received] == [(alert.id, severity)]
    notes = Notification.objects.filter(org=org, category="alert")
    assert {n.type for n in notes} == {notification_type}
    assert {n.user_id for n in notes} == {owner.id}
    assert not Notification.objects.filter(user=outsider).exists()
    assert len([m for m in mail.outbox if owner.email in m.to]) == emails


def test_high_alert_without_email_channel_is_an_error_notification(
    org, owner, django_capture_on_commit_callbacks
):
    alerting.config_update(org=org, notify_email=False)
    with django_capture_on_commit_callbacks(execute=True):
        alerting.alert_raise(
            org=org, alert_type="threshold", severity="high", service="x", title="T"
        )
    assert Notification.objects.get(org=org, category="alert").type == "error"
    assert mail.outbox == []


# -- retention --------------------------------------------------------------------------------


def test_retention_cleans_in_batches_and_is_idempotent(org, other_org):
    alerting.config_update(org=other_org, sample_retention_days=1, alert_retention_days=2)
    now = timezone.now()
    for target_org in (org, other_org, None):
        for days in (0, 3, 8):
            HealthSample.objects.create(
                org=target_org, service="redis", ok=True, at=now - dt.timedelta(days=days)
            )
    for target_org in (org, other_org):
        for days in (1, 5, 40):
            alert = alerting.alert_raise(
                org=target_org,
                alert_type="threshold",
                severity="low",
                service="x",
                key=str(days),
                title="t",
            )
            Alert.objects.filter(id=alert.id).update(resolved_at=now - dt.timedelta(days=days))
        alerting.alert_raise(
            org=target_org, alert_type="threshold", severity="low", service="open", title="t"
        )  # open: never deleted
    first = alerting.retention_clean_all_orgs(now=now, batch=1)
    assert first == {"samples": 1 + 2 + 1, "alerts": 1 + 2}
    assert alerting.retention_clean_all_orgs(now=now, batch=1) == {"samples": 0, "alerts": 0}
    assert HealthSample.objects.filter(org=org).count() == 2
    assert HealthSample.objects.filter(org=other_org).count() == 1
    assert Alert.objects.filter(org=org).count() == 3
    assert Alert.objects.filter(org=other_org).count() == 2


def test_retention_task_twice(org):
    from apps.monitoring.tasks import monitoring_retention_clean

    HealthSample.objects.create(
        org=org, service="redis", ok=True, at=timezone.now() - dt.timedelta(days=30)
    )
    assert monitoring_retention_clean.delay().get()["samples"] == 1
    assert monitoring_retention_clean.delay().get()["samples"] == 0


def test_account_down_notifies_once_not_again_through_its_alert(
    org, owner, django_capture_on_commit_callbacks
):
    """The status-change receiver notifies; the service_down alert it causes must not repeat it."""
    account = WeChatAccountFactory(org=org, status=WeChatAccount.Status.ONLINE)
    with django_capture_on_commit_callbacks(execute=True):
        accounts.account_status_change(org=org, account_id=account.id, to_status="banned")
    assert _open(org, type="service_down").count() == 1
    notes = Notification.objects.filter(org=org, user=owner)
    assert notes.count() == 1
    assert notes.get().category == "account_status" and notes.get().type == "urgent"
