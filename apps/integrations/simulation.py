"""Glue between the provider simulators and the Django project: which simulators exist,
their demo credentials, and starting them (used by ``manage.py simulate``, the test fixtures
and the demo seeder)."""

from __future__ import annotations

import importlib.util

from django.conf import settings

from apps.integrations.simulators.runner import SIMULATORS, SimulatorHandle, start_simulators

# Credentials `manage.py simulate` configures, and the demo rows use (simulators only).
DEMO_GEWE_TOKEN = "demo-gewe-token-0123456789abcdef"
DEMO_OPENAI_KEY = "sk-sim-demo-openai"
DEMO_ECLOUD_AUTHORIZATION = "demo-ecloud-authorization-0123456789"
DEMO_FASTGPT_KEY = "fastgpt-sim-demo-key"
DEMO_DIFY_KEY = "app-sim-demo-dify"
DEMO_DASHSCOPE_KEY = "sk-sim-demo-dashscope"


def available_simulators() -> list[str]:
    """Simulator names whose module exists (some providers may not have one yet)."""
    return [
        name
        for name, (module, _cls, _path) in SIMULATORS.items()
        if importlib.util.find_spec(f"apps.integrations.simulators.{module}") is not None
    ]


def demo_options() -> dict[str, dict]:
    return {
        "gewe": {"token": DEMO_GEWE_TOKEN},
        "openai": {"api_keys": [DEMO_OPENAI_KEY]},
        "ecloud": {"authorization": DEMO_ECLOUD_AUTHORIZATION},
        "fastgpt": {"api_keys": [DEMO_FASTGPT_KEY]},
        "dify": {"api_keys": [DEMO_DIFY_KEY]},
        "dashscope": {"api_keys": [DEMO_DASHSCOPE_KEY]},
    }


def simulator_url(name: str, *, host: str | None = None, port: int | None = None) -> str:
    """The client base URL of simulator ``name`` at its configured (or given) port."""
    host = host or settings.SIMULATOR_HOST
    port = port or settings.SIMULATOR_PORTS[name]
    return f"http://{host}:{port}{SIMULATORS[name][2]}"


def start(
    *,
    host: str = "127.0.0.1",
    ports: dict[str, int] | None = None,
    only: list[str] | None = None,
    options: dict[str, dict] | None = None,
) -> SimulatorHandle:
    names = [name for name in (only or available_simulators())]
    opts = demo_options()
    opts.update(options or {})
    return start_simulators(
        host, ports or {}, only=names, options={k: v for k, v in opts.items() if k in names}
    )
