"""Metrics over windows and trends (apps.monitoring.metrics)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from apps.monitoring import metrics
from apps.monitoring.models import HealthSample
from tests.integrations.factories import (
    AIAppFactory,
    IntegrationCallFactory,
    PlatformConnectionFactory,
)

pytestmark = pytest.mark.django_db


def test_p95_nearest_rank():
    assert metrics.p95([]) is None
    assert metrics.p95([7]) == 7
    assert metrics.p95(list(range(1, 101))) == 95
    assert metrics.p95([1, 2, 3, 4, 100]) == 100


def test_window_metrics_per_service_and_target(org, other_org):
    now = timezone.now() + dt.timedelta(seconds=5)  # after the factories' "now"
    connection = PlatformConnectionFactory(org=org, name="Main")
    app = AIAppFactory(org=org, provider="openai", name="Bot")
    IntegrationCallFactory(org=org, service="gewe", connection=connection, latency_ms=100)
    IntegrationCallFactory(org=org, service="gewe", connection=None, latency_ms=300, ok=False)
    IntegrationCallFactory(org=org, service="dashscope", ai_app=app, latency_ms=2000)
    IntegrationCallFactory(org=org, service="gewe", latency_ms=1, at=now - dt.timedelta(minutes=30))
    IntegrationCallFactory(org=other_org, service="gewe", latency_ms=1)
    five = {m["service"]: m for m in metrics.metrics_list(org=org, window="5m", now=now)}
    assert set(five) == {"gewe", "openai"}  # DashScope counts as OpenAI-compatible
    gewe = five["gewe"]
    assert gewe["request_count"] == 2  # a call without a connection is counted once
    assert (gewe["success_rate"], gewe["error_rate"]) == (50.0, 50.0)
    assert gewe["avg_response_time"] == 0.2 and gewe["p95_response_time"] == 0.3
    assert gewe["targets"] == [
        {
            "target": f"connection:{connection.id}",
            "target_name": "Main",
            **metrics._summary([100], 1, 1),
        }
    ]
    assert five["openai"]["targets"][0]["target_name"] == "Bot"
    hour = {m["service"]: m for m in metrics.metrics_list(org=org, window="1h", now=now)}
    assert hour["gewe"]["request_count"] == 3


def test_sampled_services_include_platform_samples(org, other_org):
    HealthSample.objects.create(org=org, service="wechat_account", target="account:1", ok=False)
    HealthSample.objects.create(
        org=org, service="wechat_account", target="account:1", ok=True, response_time_ms=200
    )
    HealthSample.objects.create(org=None, service="redis", ok=True, response_time_ms=2)
    HealthSample.objects.create(
        org=other_org, service="wechat_account", target="account:9", ok=True
    )
    data = {m["service"]: m for m in metrics.metrics_list(org=org, window="5m")}
    assert data["wechat_account"]["request_count"] == 2
    assert data["wechat_account"]["success_rate"] == 50.0
    assert [t["target"] for t in data["wechat_account"]["targets"]] == ["account:1"]
    assert data["redis"]["avg_response_time"] == 0.002


def test_trend_direction_and_statistics(org):
    now = timezone.now()
    for hours, latency, ok in ((23, 1000, False), (12, 2000, True), (2, 4000, True)):
        IntegrationCallFactory(
            org=org, service="dify", latency_ms=latency, ok=ok, at=now - dt.timedelta(hours=hours)
        )
    data = metrics.service_trends(org=org, service="dify", now=now)
    assert data["data_points"] == 3
    assert data["trends"]["response_time"] == {
        "current": 4.0,
        "average": 2.333,
        "min": 1.0,
        "max": 4.0,
        "trend": "increasing",
    }
    assert data["trends"]["success_rate"]["trend"] == "increasing"
    assert metrics.service_trends(org=org, service="gewe", now=now)["data_points"] == 0


def test_trends_of_sampled_service(org, other_org):
    now = timezone.now()
    for minutes, ms in ((120, 100), (60, 100), (10, 100)):
        HealthSample.objects.create(
            org=org,
            service="wechat_account",
            ok=True,
            response_time_ms=ms,
            at=now - dt.timedelta(minutes=minutes),
        )
    HealthSample.objects.create(
        org=other_org,
        service="wechat_account",
        ok=False,
        response_time_ms=9000,
        at=now - dt.timedelta(minutes=5),
    )
    data = metrics.service_trends(org=org, service="wechat_account", now=now)
    assert data["trends"]["response_time"]["max"] == 0.1
    assert data["trends"]["response_time"]["trend"] == "stable"
