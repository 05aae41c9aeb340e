"""Fixtures for the provider client and simulator tests (no database needed)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from apps.integrations.simulators.runner import SIMULATORS, start_simulators


@pytest.fixture(scope="session")
def sims() -> Iterator:
    """All simulators, started once per test session on free ports."""
    handle = start_simulators("127.0.0.1", only=list(SIMULATORS))
    yield handle
    handle.stop()


@pytest.fixture
def fresh_sims(sims):
    sims.reset()
    return sims


@pytest.fixture
def records() -> list:
    """A recorder: every CallRecord appended."""
    return []


@pytest.fixture
def sleeps() -> list:
    """An injectable sleep that records the requested delays instead of sleeping."""
    return []


class CallbackSink:
    """A tiny webhook receiver standing in for our callback endpoint."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.raw: list[bytes] = []
        self._event = threading.Condition()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._event:
                    sink.raw.append(body)
                    sink.received.append(json.loads(body))
                    sink._event.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"success")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/callback"

    def wait_for(self, count: int, timeout: float = 3.0) -> list[dict]:
        with self._event:
            self._event.wait_for(lambda: len(self.received) >= count, timeout)
        return list(self.received)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def callback_sink() -> Iterator[CallbackSink]:
    sink = CallbackSink()
    yield sink
    sink.stop()


@pytest.fixture
def conn(org, simulators_clean):
    """A GeWe connection to the simulator (the webhook tests)."""
    from tests.conversations.helpers import gewe_connection

    return gewe_connection(org, simulators_clean)


@pytest.fixture
def acct(org, conn, request):
    """An online account on ``conn`` with AI replies off; its device id and wxid are the test
    module's ``APP`` and ``ME``."""
    from apps.wechat_accounts.models import WeChatAccount
    from tests.wechat_accounts.factories import WeChatAccountFactory

    return WeChatAccountFactory(
        org=org,
        connection=conn,
        device_id=request.module.APP,
        wxid=request.module.ME,
        status=WeChatAccount.Status.ONLINE,
        private_reply_policy="off",
        group_reply_policy="off",
    )
