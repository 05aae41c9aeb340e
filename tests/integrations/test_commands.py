"""`manage.py simulate` and the demo seeder of the integrations app."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys

import pytest
import requests
from django.conf import settings

from apps.integrations import services, simulation
from apps.integrations.demo import DEMO_AI_APP_NAME, DEMO_CONNECTION_NAME, seed_integrations
from apps.integrations.models import AIApp, PlatformConnection


def test_simulate_command_serves_until_interrupted():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings.test"}
    process = subprocess.Popen(
        [
            sys.executable,
            "manage.py",
            "simulate",
            "--only",
            "gewe",
            "--only",
            "openai",
            "--port",
            "gewe=0",
            "--port",
            "openai=0",
        ],  # fmt: skip
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        urls = {}
        for _ in range(2):
            name, _sep, url = process.stdout.readline().strip().partition(" ")
            urls[name] = url.strip()
        assert set(urls) == {"gewe", "openai"}
        assert urls["gewe"].endswith("/gewe/v2/api")
        response = requests.post(
            f"{urls['gewe']}/login/deviceList",
            json={},
            headers={"X-GEWE-TOKEN": simulation.DEMO_GEWE_TOKEN},
            timeout=5,
        )
        assert response.json()["ret"] == 200
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_simulate_rejects_unknown_names():
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError):
        call_command("simulate", only=["teleport"])


@pytest.mark.django_db
def test_demo_seeder_is_idempotent_and_points_at_the_simulator_ports(org, owner):
    out = io.StringIO()
    seed_integrations(org=org, owner=owner, stdout=out)
    seed_integrations(org=org, owner=owner, stdout=out)
    connection = PlatformConnection.objects.get(org=org)
    app = AIApp.objects.get(org=org)
    assert connection.name == DEMO_CONNECTION_NAME
    assert connection.base_url == f"http://127.0.0.1:{settings.SIMULATOR_PORTS['gewe']}/gewe/v2/api"
    assert app.name == DEMO_AI_APP_NAME and app.is_default
    assert app.base_url == f"http://127.0.0.1:{settings.SIMULATOR_PORTS['openai']}/v1"


@pytest.mark.django_db
def test_demo_rows_work_against_simulators(org, owner, simulators_clean, monkeypatch):
    seed_integrations(org=org, owner=owner, stdout=io.StringIO())
    connection = PlatformConnection.objects.get(org=org)
    app = AIApp.objects.get(org=org)
    # Re-point at the fixture's free ports (same credentials as `manage.py simulate`).
    connection.base_url = simulators_clean.urls["gewe"]
    connection.save()
    app.base_url = simulators_clean.urls["openai"]
    app.save()
    assert services.connection_test(org=org, connection_id=connection.id).ok
    assert services.ai_app_test(org=org, ai_app_id=app.id).ok
