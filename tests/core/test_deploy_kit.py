"""deploy/: the Grafana dashboard and the Prometheus rules parse, and every series they use is one
that /metrics exposes (a renamed metric would otherwise leave a blank panel or a silent alert)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from django.conf import settings as django_settings
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(django_settings.BASE_DIR) / "deploy"
SERIES = re.compile(r"\b((?:sa|process)_[a-z0-9_]+)\b")
TOKEN = "deploy-kit-metrics-token-0123456789"


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana/dashboards/ai-sales-assistant.json").read_text())
    assert dashboard["panels"], "the dashboard has panels"
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


@pytest.fixture
def exposed(client, settings, db) -> set[str]:
    settings.METRICS_TOKEN = TOKEN
    client.get("/healthz")  # one HTTP request so the request series have a sample
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    names = set()
    for family in text_string_to_metric_families(response.content.decode()):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
        if family.type in ("counter", "histogram"):
            suffixes = ("_total",) if family.type == "counter" else ("_bucket", "_sum", "_count")
            names.update(family.name + suffix for suffix in suffixes)
    return names


def test_the_dashboard_and_rules_cover_what_operators_watch():
    used = " ".join(_dashboard_exprs())
    for series in (
        "sa_webhook_events_24h",  # webhook rate and failures
        "sa_ai_call_latency_avg_seconds_24h",  # AI latency per provider
        "sa_ai_calls_24h",  # AI failures per provider
        "sa_celery_queue_length",  # send queue depth
        "sa_outbound_messages_24h",  # sends and rate-limit deferrals
        "sa_websocket_connections",
        "sa_budget_used_percent",
        "sa_open_alerts",
        "process_resident_memory_bytes",
    ):
        assert series in used, series
    assert len(_rule_exprs()) >= 8


def test_every_series_in_the_dashboard_and_rules_exists_on_metrics(exposed):
    for expr in [*_dashboard_exprs(), *_rule_exprs()]:
        for series in SERIES.findall(expr):
            assert series in exposed, f"{series} (in {expr!r}) is not on /metrics"


def test_prometheus_rules_and_config_pass_promtool_when_it_is_installed(tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:  # the YAML checks above still ran
        rules = yaml.safe_load((DEPLOY / "prometheus/alerts.yml").read_text())
        assert all(
            "alert" in rule and "expr" in rule for g in rules["groups"] for rule in g["rules"]
        )
        return
    result = subprocess.run(
        [promtool, "check", "rules", str(DEPLOY / "prometheus/alerts.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = (DEPLOY / "prometheus/prometheus.yml").read_text()
    config = config.replace("/etc/prometheus/alerts.yml", str(DEPLOY / "prometheus/alerts.yml"))
    token = tmp_path / "token"
    token.write_text("x")
    config = config.replace("/prometheus/metrics_token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_observability_profile_mounts_the_kit():
    compose = yaml.safe_load((Path(django_settings.BASE_DIR) / "docker-compose.yml").read_text())
    services = compose["services"]
    assert services["prometheus"]["profiles"] == ["observability"]
    assert services["grafana"]["profiles"] == ["observability"]
    mounts = " ".join(services["prometheus"]["volumes"] + services["grafana"]["volumes"])
    for path in ("deploy/prometheus/alerts.yml", "deploy/grafana/dashboards"):
        assert path in mounts
    assert "/readyz" in " ".join(services["web"]["healthcheck"]["test"])
