"""Demo rows: a GeWe connection and an OpenAI-compatible AI app pointing at the simulators
that ``manage.py simulate`` (started by ``run_stack``) runs on ``SIMULATOR_PORTS``
(defaults: GeWe 2531, E云管家 2541, FastGPT 3010, Dify 3020, OpenAI 3030, DashScope 3040)."""

from __future__ import annotations

from apps.core.demo import demo_seeder
from apps.integrations import services, simulation
from apps.integrations.models import AIApp, PlatformConnection

DEMO_CONNECTION_NAME = "Demo GeWe (simulator)"
DEMO_AI_APP_NAME = "Demo assistant (simulator)"


def _origin(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@demo_seeder
def seed_integrations(*, org, owner, stdout) -> None:
    connection = PlatformConnection.objects.filter(org=org, name=DEMO_CONNECTION_NAME).first()
    if connection is None:
        connection = services.connection_create(
            org=org,
            actor=owner,
            provider=PlatformConnection.Provider.GEWE,
            name=DEMO_CONNECTION_NAME,
            base_url=simulation.simulator_url("gewe"),
            token=simulation.DEMO_GEWE_TOKEN,
            capabilities=[PlatformConnection.Capability.MOMENTS],
            # media: the simulator serves downloads on its own port (Gewechat uses 2532).
            extra={"download_base_url": _origin(simulation.simulator_url("gewe")) + "/download"},
        )
        stdout.write(f"  integrations: GeWe connection -> {connection.base_url}\n")
    if not AIApp.objects.filter(org=org, name=DEMO_AI_APP_NAME).exists():
        ai_app = services.ai_app_create(
            org=org,
            actor=owner,
            provider=AIApp.Provider.OPENAI,
            name=DEMO_AI_APP_NAME,
            base_url=simulation.simulator_url("openai"),
            api_key=simulation.DEMO_OPENAI_KEY,
            model="qwen-plus",
            system_prompt="You are a friendly sales assistant. Answer briefly.",
            purpose=AIApp.Purpose.REPLY,
            is_default=not AIApp.objects.filter(
                org=org, purpose=AIApp.Purpose.REPLY, is_default=True
            ).exists(),
        )
        stdout.write(f"  integrations: AI app -> {ai_app.base_url}\n")
