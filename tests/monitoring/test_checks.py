"""Health checks, the beat's fan-out, readiness, and simulator fault injection driving real
alerts end to end (apps.monitoring.checks and the monitoring tasks)."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from apps.core.health import run_readiness_checks
from apps.integrations import services as integration_services
from apps.integrations import simulation
from apps.integrations.models import IntegrationCall
from apps.integrations.simulators.runner import start_simulators
from apps.monitoring import alerting, checks, tasks
from apps.monitoring.models import Alert, HealthSample, MonitoringConfig
from apps.wechat_accounts.models import WeChatAccount
from tests.integrations.factories import AIAppFactory, PlatformConnectionFactory
from tests.wechat_accounts.factories import WeChatAccountFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _no_retry_sleep(monkeypatch):
    monkeypatch.setitem(integration_services.CLIENT_DEFAULTS, "sleep", lambda seconds: None)


@pytest.fixture
def openai_sim():
    """A private OpenAI-compatible simulator this test may stop and restart."""
    handle = start_simulators("127.0.0.1", only=["openai"], options=simulation.demo_options())
    yield handle
    handle.stop()


def _ai_app(org, url):
    return AIAppFactory(org=org, base_url=url, api_key=simulation.DEMO_OPENAI_KEY, model="m")


def _live_every_round(org):
    alerting.config_update(org=org, ai_check_interval_seconds=0, auto_resolve_seconds=0)


def _round(org):
    return tasks.monitoring_org_run.delay(org_id=org.id).get()


def _open(org, **filters):
    return Alert.objects.filter(org=org, resolved_at__isnull=True, **filters)


def test_slow_ai_simulator_raises_high_response_time(org, openai_sim):
    app = _ai_app(org, openai_sim.urls["openai"])
    _live_every_round(org)
    alerting.rule_upsert(
        org=org, service="openai", metric="response_time", warning=0.2, critical=30, enabled=True
    )
    _round(org)
    sample = HealthSample.objects.get(org=org, target=f"ai_app:{app.id}")
    assert sample.ok and sample.service == "openai"
    assert not _open(org).exists()
    openai_sim["openai"].add_fault("latency", delay=0.4)
    _round(org)
    alert = _open(org, type="high_response_time").get()
    assert alert.severity == "medium" and alert.target == f"ai_app:{app.id}"
    assert alert.metadata["response_time"] >= 0.2
    # The live check was never billed as a chat.
    from apps.billing.models import CostLedger

    assert not CostLedger.objects.filter(org=org).exists()


def test_ai_simulator_500s_raise_low_success_rate(org, openai_sim):
    _ai_app(org, openai_sim.urls["openai"])
    _live_every_round(org)
    openai_sim["openai"].add_fault("error", status=500)
    _round(org)
    _round(org)
    assert IntegrationCall.objects.filter(org=org, ok=False).count() >= 5
    assert _open(org, type="low_success_rate").get().severity == "critical"
    assert _open(org, type="service_down").exists()  # two failed checks in a row


def test_stopped_simulator_is_service_down_and_restart_resolves(org, other_org, openai_sim):
    app = _ai_app(org, openai_sim.urls["openai"])
    _live_every_round(org)
    port = openai_sim["openai"].port
    openai_sim.stop()
    _round(org)
    assert not _open(org, type="service_down").exists()  # one failure is not an outage yet
    _round(org)
    down = _open(org, type="service_down").get()
    assert down.severity == "critical" and down.target == f"ai_app:{app.id}"
    assert not Alert.objects.filter(org=other_org).exists()

    restarted = start_simulators(
        "127.0.0.1", {"openai": port}, only=["openai"], options=simulation.demo_options()
    )
    try:
        _round(org)
    finally:
        restarted.stop()
    down.refresh_from_db()
    assert down.resolved_at is not None and down.resolution == "auto"
    # The failed attempts leave the rate window later: those alerts resolve then.
    later = timezone.now() + timezone.timedelta(minutes=10)
    alerting.evaluate_org(org=org, now=later, anomalies=False)
    assert not _open(org).exists()


def test_passive_ai_check_reads_the_call_log_without_calling(org, openai_sim):
    app = _ai_app(org, openai_sim.urls["openai"])
    alerting.config_update(org=org, ai_live_checks=False)
    _round(org)
    assert not HealthSample.objects.filter(org=org).exists()  # no calls, no sample
    assert openai_sim["openai"].requests == []
    IntegrationCall.objects.create(
        org=org, service="openai", operation="chat", ok=True, latency_ms=800, ai_app=app
    )
    _round(org)
    sample = HealthSample.objects.get(org=org, target=f"ai_app:{app.id}")
    assert sample.ok and sample.response_time_ms == 800
    assert openai_sim["openai"].requests == []


def test_connection_check_against_the_gewe_simulator(org, simulators_clean):
    connection = PlatformConnectionFactory(
        org=org, base_url=simulators_clean.urls["gewe"], token=simulation.DEMO_GEWE_TOKEN
    )
    sample = checks.check_connection(org_id=org.id, connection_id=connection.id)
    assert sample.ok and sample.service == "gewe" and sample.target_name == connection.name
    bad = PlatformConnectionFactory(org=org, base_url=simulators_clean.urls["gewe"])
    assert checks.check_connection(org_id=org.id, connection_id=bad.id).ok is False


def test_account_checks_are_spread_and_recorded(org, monkeypatch):
    from apps.wechat_accounts import services as account_services

    accounts = [
        WeChatAccountFactory(org=org, status=WeChatAccount.Status.ONLINE, device_id=f"d{i}")
        for i in range(3)
    ]
    WeChatAccountFactory(org=org, status=WeChatAccount.Status.LOGGED_OUT, device_id="gone")
    monkeypatch.setattr(
        account_services,
        "account_check_online",
        lambda *, org_id, account_id: "offline" if account_id == accounts[1].id else "online",
    )
    scheduled = []
    original = tasks.monitoring_check_account.apply_async

    def spy(*args, **kwargs):
        scheduled.append(kwargs.get("countdown"))
        return original(*args, **kwargs)

    monkeypatch.setattr(tasks.monitoring_check_account, "apply_async", spy)
    counts = checks.checks_schedule_org(org=org)
    assert counts["accounts"] == 3
    assert scheduled == [0, 10, 20]  # 30 s interval spread over three accounts
    samples = {
        s.target: s.ok for s in HealthSample.objects.filter(org=org, service="wechat_account")
    }
    assert samples == {
        f"account:{accounts[0].id}": True,
        f"account:{accounts[1].id}": False,
        f"account:{accounts[2].id}": True,
    }


def test_tick_claims_each_org_once_per_interval_and_skips_stopped(org, other_org, monkeypatch):
    ran = []
    monkeypatch.setattr(
        tasks.monitoring_org_run, "apply_async", lambda kwargs, **_o: ran.append(kwargs["org_id"])
    )
    assert tasks.monitoring_tick.delay().get() == 2
    assert sorted(ran) == sorted([org.id, other_org.id])
    assert tasks.monitoring_tick.delay().get() == 0  # run twice: nothing is due yet
    alerting.monitoring_set_enabled(org=other_org, enabled=False)
    MonitoringConfig.objects.update(last_run_at=timezone.now() - timezone.timedelta(minutes=5))
    ran.clear()
    assert tasks.monitoring_tick.delay().get() == 1
    assert ran == [org.id]
    assert set(HealthSample.objects.filter(org__isnull=True).values_list("service", flat=True)) == {
        "database",
        "redis",
        "celery",
    }
    assert HealthSample.objects.filter(org__isnull=True, service="celery", ok=True).exists()


def test_org_run_for_a_missing_org_is_a_no_op():
    assert tasks.monitoring_org_run.delay(org_id=999999).get() == {}


def test_org_run_only_touches_its_own_org(org, other_org, openai_sim):
    _ai_app(other_org, openai_sim.urls["openai"])
    _round(org)
    assert not HealthSample.objects.filter(org=other_org).exists()
    assert openai_sim["openai"].requests == []


def test_deep_readiness_reports_workers_and_beat(settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    results = run_readiness_checks(deep=True)
    assert results["celery_workers"]["ok"] is False
    assert results["celery_beat"]["ok"] is False
    checks.beat_tick_record()
    checks.worker_pong_record(sent_at=time.time() - 0.05)
    results = run_readiness_checks(deep=True)
    assert results["celery_workers"] == {"ok": True}
    assert results["celery_beat"] == {"ok": True}
    settings.MONITORING_WORKER_STALE_SECONDS = -1
    assert run_readiness_checks(deep=True)["celery_workers"]["ok"] is False


def test_readyz_stays_ready_with_no_worker_while_readyz_deep_reports_it(client, settings):
    """A worker outage must not take every web process out of the load balancer."""
    settings.CELERY_TASK_ALWAYS_EAGER = False  # no worker has ever answered a ping here
    shallow = client.get("/readyz")
    assert shallow.status_code == 200
    assert set(shallow.json()["checks"]) == {"database", "redis"}
    deep = client.get("/readyz/deep")
    assert deep.status_code == 503
    body = deep.json()
    assert body["checks"]["celery_workers"]["ok"] is False
    assert body["checks"]["celery_beat"]["ok"] is False
    assert body["checks"]["database"] == {"ok": True}


def test_redis_check_records_a_failed_sample_from_the_readiness_probe(monkeypatch):
    """The monitoring check uses the same probe as /readyz (apps.core.health)."""
    import redis

    from apps.core import health

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(health, "get_redis", lambda: dead)
    sample = checks.check_redis()
    assert sample.ok is False and "ConnectionError" in sample.error
    assert checks.check_database().ok is True
