"""Helpers for consumer tests.

Tests are plain sync functions that run an async scenario with ``async_to_sync``: the consumers'
``database_sync_to_async`` calls then run on the test's own thread and database connection, so
the usual (rolled-back) ``db`` fixture works without ``transaction=True``.
"""

from __future__ import annotations

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from rest_framework_simplejwt.tokens import AccessToken

from config.routing import websocket_urlpatterns

application = URLRouter(websocket_urlpatterns)
TIMEOUT = 3


def token_for(user) -> str:
    return str(AccessToken.for_user(user))


async def ws_open(path: str, *, user=None, token: str | None = None, org=None, extra: str = ""):
    """Open a socket (``?token=`` from ``user``) and return (communicator, first event or the
    close message)."""
    params = []
    if user is not None or token is not None:
        params.append(f"token={token if token is not None else token_for(user)}")
    if org is not None:
        params.append(f"org={org.slug if hasattr(org, 'slug') else org}")
    if extra:
        params.append(extra)
    url = path + ("?" + "&".join(params) if params else "")
    communicator = WebsocketCommunicator(application, url)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    output = await communicator.receive_output(timeout=TIMEOUT)
    if output["type"] == "websocket.send":
        import json

        return communicator, json.loads(output["text"])
    return communicator, output


NOISE = {"ping", "user_status_update"}


async def receive_event(communicator, timeout: float = TIMEOUT) -> dict:
    """The next event that is not a server ping or a presence update."""
    while True:
        event = await communicator.receive_json_from(timeout=timeout)
        if event["type"] not in NOISE:
            return event


async def receive_until(communicator, event_type: str, timeout: float = TIMEOUT) -> dict:
    """Skip events (pings, presence) until one of ``event_type``."""
    while True:
        event = await communicator.receive_json_from(timeout=timeout)
        if event["type"] == event_type:
            return event


async def drain(communicator, window: float = 0.2) -> list[dict]:
    """Every event that arrives within ``window`` seconds (used to assert silence)."""
    import json

    events = []
    while True:
        if await communicator.receive_nothing(timeout=window):
            return events
        output = await communicator.receive_output(timeout=window)
        if output["type"] == "websocket.send":
            events.append(json.loads(output["text"]))
        else:
            events.append(output)


@pytest.fixture(autouse=True)
def _keep_test_connection(monkeypatch):
    """``database_sync_to_async`` closes "old" connections around each call, which would close
    the test's connection inside its rolled-back transaction. Production keeps the behaviour."""
    monkeypatch.setattr("channels.db.close_old_connections", lambda: None)


@pytest.fixture(autouse=True)
def _fast_ws(settings):
    settings.WS_AUTH_TIMEOUT_SECONDS = 0.3
    settings.WS_HEARTBEAT_INTERVAL_SECONDS = 30
    settings.WS_HEARTBEAT_TIMEOUT_SECONDS = 60
