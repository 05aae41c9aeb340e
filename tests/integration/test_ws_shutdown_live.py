"""A disconnecting WebSocket client lets its consumer stop at once: no Daphne warning that an
application instance "took too long to shut down and was killed" (issue 22).

Daphne runs with ``--application-close-timeout 4`` (its default is ten), so a consumer that
lingers four seconds after its client left is reported; the channel layer's blocking receive used
to keep one alive for up to five and now for at most ``CHANNELS_BLOCK_SECONDS`` (one), which
leaves room for a loaded CI machine (apps/core/channel_layer.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import pytest
from django.conf import settings
from websockets.asyncio.client import connect

from tests.conftest import requires_postgres
from tests.integration.test_ws_live import _database_url, _free_port, _wait_for_port
from tests.realtime.conftest import token_for

pytestmark = [requires_postgres, pytest.mark.integration]


@pytest.fixture
def daphne(django_db_setup, tmp_path):
    log = tmp_path / "daphne.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "DB_CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
    }
    port = _free_port()
    with open(log, "w") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "daphne",
                "--application-close-timeout",
                "4",
                "-b",
                "127.0.0.1",
                "-p",
                str(port),
                "config.asgi:application",
            ],
            env=env,
            cwd=settings.BASE_DIR,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_port(port, process)
        yield f"ws://127.0.0.1:{port}", log
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.mark.django_db(transaction=True)
def test_disconnects_leave_no_lingering_consumer(daphne, member):
    base, log = daphne
    token = token_for(member)

    async def scenario():
        for _ in range(3):
            chat = await connect(f"{base}/ws/chat/?token={token}", ping_interval=None)
            monitor = await connect(f"{base}/ws/admin/monitor/?token={token}", ping_interval=None)
            anonymous = await connect(f"{base}/ws/chat/", ping_interval=None)
            assert json.loads(await chat.recv())["type"] == "connection_established"
            assert json.loads(await monitor.recv())["type"] == "connection_established"
            await chat.send(json.dumps({"type": "typing", "data": {"conversation_id": 1}}))
            await asyncio.sleep(1.5)  # every consumer is now idle in the layer's receive
            await chat.close()  # a clean close
            await anonymous.close()  # before authenticating
            monitor.transport.abort()  # a dropped network (laptop lid)
        await asyncio.sleep(6)  # past the close timeout: a lingering consumer is reported

    asyncio.run(scenario())
    output = log.read_text()
    assert output.count("took too long to shut down") == 0, output
