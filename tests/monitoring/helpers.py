"""Listening on a realtime group from a sync test, and a tiny HTTP receiver for webhooks."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis
from channels.layers import get_channel_layer
from django.conf import settings

from apps.core import ws_hub


class GroupListener:
    """Subscribed to ``groups`` as a Daphne process's hub is (one pub/sub channel per group,
    ``apps.core.ws_hub``); ``messages(window)`` returns what arrived."""

    def __init__(self, *groups: str) -> None:
        self.layer = get_channel_layer()
        self.pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
        self.pubsub.subscribe(*(ws_hub.hub_channel(self.layer, group) for group in groups))
        confirmed = 0
        deadline = time.monotonic() + 5
        while confirmed < len(groups) and time.monotonic() < deadline:
            raw = self.pubsub.get_message(timeout=0.5)
            confirmed += raw is not None and raw["type"] == "subscribe"

    def messages(self, window: float = 0.3) -> list[dict]:
        found = []
        while True:
            raw = self.pubsub.get_message(timeout=window)
            if raw is None:
                return found
            if raw["type"] == "message":
                found.append(self.layer.deserialize(raw["data"]))

    def events(self, window: float = 0.3) -> list[dict]:
        return [m["event"] for m in self.messages(window) if m["type"] == "realtime.event"]


class WebhookReceiver:
    """A real HTTP server on a free port recording each POST; answers ``status`` / ``body``."""

    def __init__(self, status: int = 200, body: dict | None = None) -> None:
        self.requests: list[dict] = []
        self.status = status
        self.body = body or {"errcode": 0}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                raw = self.rfile.read(length)
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "raw": raw}
                )
                payload = json.dumps(receiver.body).encode()
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
