"""``/metrics``: Prometheus text, access control, series computed from Redis and the database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from prometheus_client.parser import text_string_to_metric_families

from apps.billing.models import CostLedger
from apps.monitoring import alerting
from tests.integrations.factories import AIAppFactory, IntegrationCallFactory

pytestmark = pytest.mark.django_db
TOKEN = "metrics-test-token-0123456789"


@pytest.fixture
def metrics_settings(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_IPS = []
    return settings


def _scrape(client, **headers):
    return client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}", **headers)


def _families(response) -> dict:
    return {f.name: f for f in text_string_to_metric_families(response.content.decode())}


def _value(families, name, sample_name=None, **labels):
    for sample in families[name].samples:
        if (sample_name is None or sample.name == sample_name) and all(
            sample.labels.get(k) == v for k, v in labels.items()
        ):
            return sample.value
    return None


def test_refused_without_token_or_with_a_wrong_one(client, metrics_settings):
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    assert _scrape(client).status_code == 200


def test_refused_when_nothing_is_configured(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = []
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer ").status_code == 403


def test_ip_allow_list(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="192.168.1.1").status_code == 403


def test_exposition_parses_and_counts(client, api_client, org, other_org, metrics_settings):
    app = AIAppFactory(org=org, model="qwen-plus")
    IntegrationCallFactory(org=org, service="openai", ai_app=app, latency_ms=400)
    IntegrationCallFactory(org=other_org, service="openai", ai_app=None, ok=False, latency_ms=200)
    CostLedger.objects.create(
        org=org,
        request_id="r1",
        provider="openai",
        model="qwen-plus",
        kind="chat",
        input_tokens=100,
        output_tokens=20,
        cost=Decimal("0.25"),
    )
    alerting.alert_raise(org=org, alert_type="anomaly", severity="medium", service="x", title="t")
    api_client.get("/api/v1/monitoring/status/")
    api_client.get("/api/v1/monitoring/status/")
    response = _scrape(client)
    assert response["Content-Type"].startswith("text/plain")
    families = _families(response)
    assert {
        "sa_http_requests",
        "sa_http_request_duration_seconds",
        "sa_webhook_events_24h",
        "sa_outbound_messages_24h",
        "sa_ai_calls_24h",
        "sa_ai_call_latency_avg_seconds_24h",
        "sa_ai_tokens_24h",
        "sa_cost_24h",
        "sa_websocket_connections",
        "sa_celery_queue_length",
        "sa_open_alerts",
    } <= set(families)
    assert (
        _value(
            families,
            "sa_http_requests",
            "sa_http_requests_total",
            view="monitoring-status",
            status="200",
        )
        == 2
    )
    assert (
        _value(
            families,
            "sa_http_request_duration_seconds",
            "sa_http_request_duration_seconds_count",
            view="monitoring-status",
        )
        == 2
    )
    assert (
        _value(families, "sa_ai_calls_24h", provider="openai", model="qwen-plus", outcome="ok") == 1
    )
    assert _value(families, "sa_ai_calls_24h", provider="openai", model="", outcome="error") == 1
    assert _value(families, "sa_ai_tokens_24h", provider="openai", direction="input") == 100
    assert _value(families, "sa_cost_24h", provider="openai", currency="CNY") == 0.25
    assert _value(families, "sa_open_alerts", type="anomaly", severity="medium") == 1
    # The scrape itself is not counted.
    assert _value(families, "sa_http_requests", "sa_http_requests_total", view="metrics") is None


def test_budget_use_and_the_serving_process_are_exposed(client, org, other_org, metrics_settings):
    from apps.billing.models import Kind
    from apps.billing.services import record_usage
    from tests.billing.factories import BudgetFactory

    BudgetFactory(org=org, money_limit=None, token_limit=80)
    record_usage(
        org=org,
        provider="openai",
        model="qwen-plus",
        request_id="budget-1",
        kind=Kind.CHAT,
        input_tokens=10,
        output_tokens=10,
    )
    families = _families(_scrape(client))
    assert _value(families, "sa_budget_used_percent", org=org.slug) == pytest.approx(25.0)
    assert _value(families, "sa_budget_used_percent", org=other_org.slug) is None
    assert _value(families, "process_resident_memory_bytes") > 0
    assert _value(families, "process_open_fds") > 0
    assert _value(families, "process_cpu_seconds", "process_cpu_seconds_total") > 0
