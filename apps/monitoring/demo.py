"""Demo rows: one open alert, as the dashboard and the alert list show a real one."""

from __future__ import annotations

from apps.core.demo import demo_seeder

from . import alerting
from .models import Alert

DEMO_ALERT_TARGET = "demo-ai-latency"


@demo_seeder
def seed_monitoring(*, org, owner, stdout) -> None:
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
