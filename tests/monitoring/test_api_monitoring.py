"""The monitoring endpoints under /api/v1/monitoring/ (roles, filters, cross-org isolation)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.billing.models import CostLedger
from apps.monitoring import alerting
from apps.monitoring.models import Alert, HealthSample
from apps.orgs.models import Role
from tests.conftest import client_for
from tests.integrations.factories import IntegrationCallFactory, PlatformConnectionFactory

pytestmark = pytest.mark.django_db
BASE = "/api/v1/monitoring"


def _alert(org, severity="medium", service="gewe", key="", **kwargs):
    return alerting.alert_raise(
        org=org,
        alert_type=kwargs.pop("alert_type", "high_response_time"),
        severity=severity,
        service=service,
        key=key,
        title=f"{service} slow",
        **kwargs,
    )


def test_overview_in_the_seed_shape(api_client, org, other_org):
    connection = PlatformConnectionFactory(org=org, name="Main")
    HealthSample.objects.create(
        org=org,
        service="gewe",
        target=f"connection:{connection.id}",
        ok=True,
        response_time_ms=850,
    )
    HealthSample.objects.create(org=other_org, service="dify", target="ai_app:1", ok=False)
    HealthSample.objects.create(org=None, service="redis", ok=True, response_time_ms=1)
    IntegrationCallFactory(org=org, service="gewe", connection=connection, latency_ms=1200)
    _alert(org, severity="critical")
    body = api_client.get(f"{BASE}/overview/").json()
    assert body["total_services"] == 2
    assert set(body["services"]) == {"gewe", "redis"}  # not the other org's dify
    assert body["services"]["gewe"]["status"] == "degraded"  # an open critical alert
    assert body["services"]["gewe"]["response_time"] == 1.2
    assert body["services"]["gewe"]["success_rate"] == 100.0
    assert body["active_alerts"] == 1 and body["critical_alerts"] == 1


def test_metrics_filters_and_window(api_client, org, other_org):
    connection = PlatformConnectionFactory(org=org)
    for latency in (100, 200, 300, 400, 5000):
        IntegrationCallFactory(org=org, service="gewe", connection=connection, latency_ms=latency)
    IntegrationCallFactory(org=org, service="dify", ok=False, latency_ms=50)
    IntegrationCallFactory(
        org=org, service="gewe", at=timezone.now() - dt.timedelta(hours=2), latency_ms=9
    )
    IntegrationCallFactory(org=other_org, service="gewe", latency_ms=1)
    CostLedger.objects.create(
        org=org,
        request_id="r1",
        provider="gewe",
        model="send_text",
        kind="platform",
        input_tokens=10,
        output_tokens=5,
        cost=Decimal("1.5"),
    )
    body = api_client.get(f"{BASE}/metrics/", {"service": "gewe", "window": "1h"}).json()
    [gewe] = body["data"]
    assert gewe["request_count"] == 5
    assert gewe["avg_response_time"] == 1.2 and gewe["p95_response_time"] == 5.0
    assert gewe["tokens"] == 15 and Decimal(gewe["cost"]) == Decimal("1.5")
    assert gewe["targets"][0]["target"] == f"connection:{connection.id}"
    day = api_client.get(f"{BASE}/metrics/", {"window": "24h"}).json()["data"]
    day = {m["service"]: m for m in day}
    assert day["gewe"]["request_count"] == 6 and day["dify"]["error_rate"] == 100.0
    target = api_client.get(
        f"{BASE}/metrics/", {"target": f"connection:{connection.id}", "service": "gewe"}
    ).json()["data"][0]
    assert target["request_count"] == 5
    bad = api_client.get(f"{BASE}/metrics/", {"window": "2d"})
    assert bad.status_code == 400 and "window" in bad.json()["error"]["fields"]


def test_trends_in_the_seed_shape(api_client, org):
    now = timezone.now()
    for hours, latency in ((20, 3000), (10, 2000), (1, 1000)):
        IntegrationCallFactory(
            org=org, service="fastgpt", latency_ms=latency, at=now - dt.timedelta(hours=hours)
        )
    body = api_client.get(f"{BASE}/metrics/fastgpt/trends/").json()
    assert body["service_name"] == "FastGPT" and body["time_range"] == "24 hours"
    assert body["data_points"] == 3
    assert body["trends"]["response_time"] == {
        "current": 1.0,
        "average": 2.0,
        "min": 1.0,
        "max": 3.0,
        "trend": "decreasing",
    }
    assert body["trends"]["success_rate"]["trend"] == "stable"
    assert api_client.get(f"{BASE}/metrics/nope/trends/").status_code == 404


def test_alert_list_filters_and_summary(api_client, org, other_org, django_assert_max_num_queries):
    _alert(org, severity="critical", service="gewe")
    _alert(org, severity="medium", service="dify")
    done = _alert(org, severity="low", service="gewe", key="x")
    alerting.alert_resolve(org=org, alert_id=done.id)
    _alert(other_org, severity="critical", service="gewe")
    with django_assert_max_num_queries(6):
        body = api_client.get(f"{BASE}/alerts/").json()
    assert len(body["results"]) == 3
    item = body["results"][0]
    assert {
        "alert_id",
        "service_name",
        "alert_type",
        "severity",
        "title",
        "message",
        "timestamp",
        "resolved",
        "metadata",
        "count",
    } <= set(item)
    assert len(api_client.get(f"{BASE}/alerts/", {"service": "gewe"}).json()["results"]) == 2
    assert len(api_client.get(f"{BASE}/alerts/", {"severity": "critical"}).json()["results"]) == 1
    open_only = api_client.get(f"{BASE}/alerts/", {"resolved": "false"}).json()["results"]
    assert len(open_only) == 2 and not any(a["resolved"] for a in open_only)
    assert api_client.get(f"{BASE}/alerts/", {"severity": "bad"}).status_code == 400
    summary = api_client.get(f"{BASE}/alerts/summary/").json()
    assert summary["total_open"] == 2
    assert summary["by_severity"]["critical"] == 1 and summary["by_severity"]["high"] == 0
    assert summary["by_service"] == {"dify": 1, "gewe": 1}
    assert summary["resolved_last_24h"] == 1


def test_resolve_alert_roles_and_cross_org(org, other_org, member, make_member, outsider):
    alert = _alert(org)
    foreign = _alert(other_org)
    agent = client_for(make_member(Role.AGENT), org)
    assert agent.post(f"{BASE}/alerts/{alert.id}/resolve/").status_code == 403
    client = client_for(member, org)
    assert client.post(f"{BASE}/alerts/{foreign.id}/resolve/").status_code == 404
    assert client.get(f"{BASE}/alerts/{foreign.id}/").status_code == 404
    response = client.post(f"{BASE}/alerts/{alert.id}/resolve/", {"note": "fixed"}, format="json")
    assert response.status_code == 200
    assert response.json()["resolved"] is True and response.json()["resolution"] == "fixed"
    assert response.json()["resolved_by"] == member.id
    foreign.refresh_from_db()
    assert foreign.resolved_at is None
    outsider_client = client_for(outsider, other_org)
    assert outsider_client.get(f"{BASE}/alerts/{alert.id}/").status_code == 404


def test_config_get_and_put(api_client, org, other_org, make_member):
    body = api_client.get(f"{BASE}/config/").json()
    assert body["interval_seconds"] == 30 and body["sample_retention_days"] == 7
    assert {(r["service"], r["metric"], r["warning"], r["critical"]) for r in body["rules"]} == {
        ("*", "response_time", 5.0, 10.0),
        ("*", "success_rate", 90.0, 80.0),
        ("*", "error_rate", 5.0, 10.0),
    }
    response = api_client.put(
        f"{BASE}/config/",
        {
            "interval_seconds": 60,
            "alert_retention_days": 14,
            "ai_live_checks": False,
            "rules": [{"service": "dify", "metric": "response_time", "warning": 8, "critical": 20}],
        },
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["interval_seconds"] == 60
    assert ("dify", "response_time") in {
        (r["service"], r["metric"]) for r in response.json()["rules"]
    }
    assert alerting.config_get(org=other_org).interval_seconds == 30
    bad = api_client.put(f"{BASE}/config/", {"interval_seconds": 1}, format="json")
    assert bad.status_code == 400 and "interval_seconds" in bad.json()["error"]["fields"]
    bad_rule = api_client.put(
        f"{BASE}/config/",
        {"rules": [{"service": "gewe", "metric": "success_rate", "warning": 80, "critical": 90}]},
        format="json",
    )
    assert bad_rule.status_code == 400
    manager = client_for(make_member(Role.MANAGER), org)
    assert manager.get(f"{BASE}/config/").status_code == 200
    assert (
        manager.put(f"{BASE}/config/", {"interval_seconds": 40}, format="json").status_code == 403
    )


def test_start_stop_status(api_client, org, other_org, make_member):
    assert api_client.post(f"{BASE}/stop/").json()["enabled"] is False
    assert alerting.config_get(org=org).enabled is False
    assert alerting.config_get(org=other_org).enabled is True
    status = api_client.get(f"{BASE}/status/").json()
    assert status["enabled"] is False and status["interval_seconds"] == 30
    assert api_client.post(f"{BASE}/start/").json()["enabled"] is True
    viewer = client_for(make_member(Role.VIEWER), org)
    assert viewer.get(f"{BASE}/status/").status_code == 200
    assert viewer.post(f"{BASE}/stop/").status_code == 403


def test_endpoints_need_authentication(anon_client):
    for path in ("overview/", "metrics/", "alerts/", "alerts/summary/", "config/", "status/"):
        assert anon_client.get(f"{BASE}/{path}").status_code == 401


def test_alert_detail_of_unknown_id_is_404(api_client):
    assert api_client.get(f"{BASE}/alerts/999999/").status_code == 404
    assert api_client.post(f"{BASE}/alerts/abc/resolve/").status_code == 404
    assert not Alert.objects.exists()
