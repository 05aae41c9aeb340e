"""Real clients against real processes: two Daphne servers and a Celery worker (not eager), the
channels-redis layer on the real Redis, and PostgreSQL with committed rows.

Short heartbeat settings are passed to the servers through the environment so the whole module
runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from apps.core import realtime
from apps.core.ws import CloseCode
from apps.orgs.models import Role
from tests.conftest import requires_postgres
from tests.conversations.factories import ConversationFactory, MessageFactory
from tests.realtime.conftest import token_for

pytestmark = [requires_postgres, pytest.mark.integration]

HEARTBEAT_INTERVAL = 0.5
HEARTBEAT_TIMEOUT = 1.5
QUEUE = f"ws-live-{uuid.uuid4().hex[:8]}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture(scope="module")
def stack(django_db_setup, django_db_blocker):
    """Two Daphne processes and one Celery worker sharing the test database and Redis."""
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_EAGER": "0",
        "WS_HEARTBEAT_INTERVAL_SECONDS": str(HEARTBEAT_INTERVAL),
        "WS_HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT),
        "WS_AUTH_TIMEOUT_SECONDS": "1",
        "WS_MAX_CONNECTIONS_PER_USER": "5",
        "DB_CONN_MAX_AGE": "0",
        "LOG_LEVEL": "WARNING",
    }
    python = sys.executable
    ports = [_free_port(), _free_port()]
    processes = [
        subprocess.Popen(
            [python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
            env=env,
            cwd=settings.BASE_DIR,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for port in ports
    ]
    worker = subprocess.Popen(
        [
            python,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-P",
            "solo",
            "-l",
            "WARNING",
            "-Q",
            QUEUE,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env=env,
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    processes.append(worker)
    try:
        for port, process in zip(ports, processes, strict=False):
            _wait_for_port(port, process)
        yield {"urls": [f"ws://127.0.0.1:{port}" for port in ports], "worker": worker}
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


class Client:
    """A real ``websockets`` client that answers server pings in the background (as the SPA
    does) and queues every other event."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.queue: asyncio.Queue = asyncio.Queue()
        self.close_code: int | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                event = json.loads(raw)
                if event["type"] == "ping":
                    await self.ws.send(json.dumps({"type": "pong"}))
                else:
                    self.queue.put_nowait(event)
        except ConnectionClosed:
            pass
        rcvd = self.ws.protocol.close_rcvd
        self.close_code = rcvd.code if rcvd else None
        self.queue.put_nowait({"type": "closed", "code": self.close_code})

    async def send(self, event_type: str, **data) -> None:
        await self.ws.send(json.dumps({"type": event_type, "data": data}))

    async def next(self, event_type: str, timeout: float = 5) -> dict:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            event = await asyncio.wait_for(self.queue.get(), timeout=max(remaining, 0.01))
            if event["type"] == event_type:
                return event
            if event["type"] == "closed":
                raise AssertionError(f"closed with {event['code']} waiting for {event_type}")

    async def closed_with(self, timeout: float = 5) -> int:
        await asyncio.wait_for(asyncio.shield(self.reader), timeout=timeout)
        return self.close_code

    async def silence(self, window: float) -> list[dict]:
        """Every event (but presence updates) that arrives within ``window``."""
        await asyncio.sleep(window)
        events = []
        while not self.queue.empty():
            event = self.queue.get_nowait()
            if event["type"] != "user_status_update":
                events.append(event)
        return events

    async def close(self) -> None:
        await self.ws.close()
        await self.reader


async def _open(base: str, path: str, user=None, *, auto_pong: bool = True, **params):
    query = dict(params)
    if user is not None:
        query["token"] = token_for(user)
    url = base + path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    ws = await connect(url, open_timeout=10, ping_interval=None)
    if not auto_pong:
        return ws
    return Client(ws)


async def _silent_close_code(ws, timeout: float = 5) -> int:
    """For a raw socket that never answers: wait for the server to close it."""
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout=timeout)
    except ConnectionClosed:
        return ws.protocol.close_rcvd.code if ws.protocol.close_rcvd else None


@pytest.mark.django_db(transaction=True)
def test_worker_event_reaches_the_client_and_another_org_hears_nothing(
    stack, org, owner, other_org, outsider
):
    from config.celery import app

    base = stack["urls"][0]

    async def scenario():
        monitor = await _open(base, "/ws/admin/monitor/", user=owner)
        await monitor.next("connection_established")
        await monitor.next("stats_update")
        theirs = await _open(stack["urls"][1], "/ws/chat/", user=outsider)
        await theirs.next("connection_established")
        # Published by the real worker process (send_task never runs eagerly).
        app.send_task("apps.monitoring.tasks.ws_stats_push", queue=QUEUE)
        event = await monitor.next("stats_update", timeout=20)
        assert event["data"]["total_connections"] == 1
        # A push to every group of the first org, from this process.
        groups = [
            realtime.group_for_org(org.id),
            realtime.group_for_conversations(org.id),
            realtime.group_for_monitor(org.id),
            realtime.group_for_user(org.id, owner.id),
        ]
        await asyncio.to_thread(realtime.push, "new_message", {"secret": 1}, groups=groups)
        assert (await monitor.next("new_message"))["data"] == {"secret": 1}
        assert await theirs.silence(1.0) == []
        await monitor.close()
        await theirs.close()

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_auth_failures_close_with_documented_codes(stack, org, member, other_org):
    foreign = ConversationFactory(org=other_org)
    base = stack["urls"][0]

    async def scenario():
        ws = await _open(base, "/ws/chat/", token="garbage")
        assert await ws.closed_with() == CloseCode.UNAUTHENTICATED
        ws = await _open(base, "/ws/chat/")  # no token, no auth message
        assert await ws.closed_with() == CloseCode.UNAUTHENTICATED
        ws = await _open(base, "/ws/chat/", user=member, org=other_org.slug)
        assert await ws.closed_with() == CloseCode.FORBIDDEN
        ws = await _open(base, f"/ws/chat/session/{foreign.id}/", user=member)
        assert await ws.closed_with() == CloseCode.NOT_FOUND

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_connection_limit_holds_across_two_daphne_processes(stack, member):
    first, second = stack["urls"]

    async def scenario():
        sockets = []
        for base in (first, first, first, second, second):
            ws = await _open(base, "/ws/chat/", user=member)
            await ws.next("connection_established")
            sockets.append(ws)
        for base in (first, second):
            ws = await _open(base, "/ws/chat/", user=member)
            assert await ws.closed_with() == CloseCode.TOO_MANY_CONNECTIONS
        await sockets.pop().close()
        await asyncio.sleep(0.3)  # the server frees the slot on disconnect
        ws = await _open(first, "/ws/chat/", user=member)
        await ws.next("connection_established")
        sockets.append(ws)
        for ws in sockets:
            await ws.close()

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_heartbeat_timeout_and_typing_relay(stack, org, member, make_member):
    agent = make_member(Role.AGENT)
    conversation = ConversationFactory(org=org)
    base, other = stack["urls"]

    async def scenario():
        silent = await _open(base, "/ws/chat/", user=agent, auto_pong=False)
        started = time.monotonic()
        assert await _silent_close_code(silent) == CloseCode.HEARTBEAT_TIMEOUT
        # The silence clock starts at the handshake, a little before `started`.
        assert HEARTBEAT_TIMEOUT - 0.5 <= time.monotonic() - started < HEARTBEAT_TIMEOUT + 3

        a = await _open(base, "/ws/chat/", user=member)
        b = await _open(other, f"/ws/chat/session/{conversation.id}/", user=agent)
        await b.next("session_joined")
        await a.send("join", conversation_id=conversation.id)
        await a.next("session_joined")
        await a.send("typing", conversation_id=conversation.id, is_typing=True)
        typing = await b.next("typing")
        assert typing["data"]["user_id"] == member.id
        assert [e for e in await a.silence(0.5) if e["type"] == "typing"] == []
        await a.send("leave", conversation_id=conversation.id)
        await a.next("session_left")
        # Still alive well past the timeout because the client answers the pings.
        await asyncio.sleep(HEARTBEAT_TIMEOUT + 0.5)
        await a.send("ping")
        await a.next("pong")
        await a.close()
        await b.close()

    asyncio.run(scenario())


@pytest.mark.django_db(transaction=True)
def test_reconnect_catches_up_from_the_database(stack, org, member):
    conversation = ConversationFactory(org=org)
    MessageFactory(conversation=conversation, text="before")
    base = stack["urls"][0]
    path = f"/ws/chat/session/{conversation.id}/"

    async def first_visit():
        ws = await _open(base, path, user=member)
        event = await ws.next("connection_established")
        await ws.close()
        return event["ts"]

    seen_at = asyncio.run(first_visit())
    missed = [MessageFactory(conversation=conversation, text=f"missed {i}") for i in range(3)]

    async def reconnect():
        ws = await _open(base, path, user=member, since=seen_at.replace("+", "%2B"))
        event = await ws.next("sync")
        await ws.close()
        return event

    event = asyncio.run(reconnect())
    assert [m["id"] for m in event["data"]["messages"]] == [m.id for m in missed]
    assert event["data"]["messages"][0]["text"] == "missed 0"
    assert timezone.now() - timedelta(minutes=1) < missed[0].created_at
