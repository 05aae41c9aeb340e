"""Demo rows: one open alert, as the dashboard and the alert list show a real one."""

from __future__ import annotations

from apps.core.demo import demo_seeder

from . import alerting
from .models import Alert

DEMO_ALERT_TARGET = "demo-ai-latency"


# The demo's history spans a few days only; against so thin a baseline the first simulated
# messages would look like an anomaly. Anomaly detection starts after a week of history.
DEMO_ANOMALY_MIN_HOURS = 168


@demo_seeder
def seed_monitoring(*, org, owner, stdout) -> None:
    if alerting.config_get(org=org).anomaly_min_hours < DEMO_ANOMALY_MIN_HOURS:
        alerting.config_update(org=org, anomaly_min_hours=DEMO_ANOMALY_MIN_HOURS)
    if Alert.objects.filter(org=org, target=DEMO_ALERT_TARGET).exists():
        return
    # source "demo": not one of the evaluated sources, so the checks never auto-resolve it;
    # resolving it by hand is part of the walkthrough.
    alerting.alert_raise(
        org=org,
        alert_type=Alert.Type.HIGH_RESPONSE_TIME,
        severity=Alert.Severity.MEDIUM,
        service="openai",
        target=DEMO_ALERT_TARGET,
        title="AI 回复变慢：近 5 分钟平均响应 6.2 秒",
        message="「Demo assistant」近 5 分钟平均响应时间 6.2 秒，超过 5 秒的预警线。",
        metadata={"value": 6.2, "threshold": 5.0},
        source="demo",
    )
    stdout.write("  monitoring: one open alert\n")
