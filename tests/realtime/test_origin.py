"""The WebSocket origin and auth matrix (apps/core/ws_origin.py through config.asgi)."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from config.asgi import application
from tests.realtime.conftest import TIMEOUT, token_for

SPA = "https://app.example.com"


@pytest.fixture
def hosts(settings):
    settings.ALLOWED_HOSTS = ["sales.example.com"]
    settings.CORS_ALLOWED_ORIGINS = [SPA]


def _connect(path: str, origin: str | None):
    async def scenario():
        headers = [(b"origin", origin.encode())] if origin else []
        communicator = WebsocketCommunicator(application, path, headers=headers)
        connected, code = await communicator.connect(timeout=TIMEOUT)
        first = None
        if connected:
            first = await communicator.receive_json_from(timeout=TIMEOUT)
        await communicator.disconnect()
        return connected, code, first

    return async_to_sync(scenario)()


@pytest.mark.django_db
def test_jwt_with_no_origin_is_accepted(hosts, member):
    connected, _code, first = _connect(f"/ws/chat/?token={token_for(member)}", None)
    assert connected and first["type"] == "connection_established"


@pytest.mark.django_db
def test_jwt_from_the_sites_own_host_and_from_an_allowed_spa_is_accepted(hosts, member):
    for origin in ("https://sales.example.com", SPA):
        connected, _code, first = _connect(f"/ws/chat/?token={token_for(member)}", origin)
        assert connected and first["type"] == "connection_established", origin


@pytest.mark.django_db
def test_a_refused_origin_is_denied_even_with_a_valid_token(hosts, member):
    connected, _code, _first = _connect(
        f"/ws/chat/?token={token_for(member)}", "https://evil.example.net"
    )
    # Refused during the handshake, before any consumer accepts (Daphne answers HTTP 403).
    assert connected is False


@pytest.mark.django_db
def test_no_origin_and_no_token_still_needs_authentication(hosts, client, member):
    """A socket without an Origin is not trusted for anything: the session cookie never
    authenticates it, and with no token it is closed with 4401."""
    client.force_login(member)

    async def scenario():
        cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
        communicator = WebsocketCommunicator(
            application, "/ws/chat/", headers=[(b"cookie", cookie)]
        )
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        assert connected  # accepted only to wait for an auth message
        await communicator.send_json_to({"type": "ping"})
        output = await communicator.receive_output(timeout=7)
        while output["type"] == "websocket.send":
            output = await communicator.receive_output(timeout=7)
        return output

    output = async_to_sync(scenario)()
    assert output == {"type": "websocket.close", "code": 4401}
