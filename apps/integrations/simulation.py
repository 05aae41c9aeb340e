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


# The demo's AI answers (``manage.py simulate``): a question containing the key gets the value;
# anything else is answered "echo: <question>".
DEMO_AI_CANNED = {
    "你好": "您好！我是销售小王的 AI 助手 😊 我们主营实木地板和全屋软装，请问您想了解哪方面？",
    "多少钱": "三居室按 90㎡ 估算，橡木多层实木地板含安装约 1.8–2.4 万元；告诉我面积，我帮您细算。",
    "价格": "现在下单享 9 折，还送踢脚线和免费上门量房。方便说一下房子面积吗？",
    "地址": "门店在深圳市南山区科技园中区 8 号，周一至周日 9:00–21:00，欢迎来体验～",
    "量房": "好的，已为您登记免费上门量房，师傅会提前一天电话联系您确认时间。",
    "团购": "8 户以上团购可享 9 折并免费出设计方案，请问大家主要看哪个系列？",
}


def run_options() -> dict[str, dict]:
    """Options of the long-running simulators (``manage.py simulate``, so ``make run``): a QR
    login confirms itself after ``SIMULATOR_LOGIN_CONFIRM_SECONDS``, the AI has demo answers."""
    delay = settings.SIMULATOR_LOGIN_CONFIRM_SECONDS
    return {
        "gewe": {"login_delay": delay},
        "ecloud": {"login_delay": delay},
        "openai": {"canned": DEMO_AI_CANNED},
        "dashscope": {"canned": DEMO_AI_CANNED},
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
    for name, extra in (options or {}).items():
        opts[name] = {**opts.get(name, {}), **extra}
    return start_simulators(
        host, ports or {}, only=names, options={k: v for k, v in opts.items() if k in names}
    )
