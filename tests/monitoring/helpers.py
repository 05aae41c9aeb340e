"""Listening on a channel-layer group from a sync test, and a tiny HTTP receiver for webhooks."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer


class GroupListener:
    """A fresh channel subscribed to ``groups``; ``messages(window)`` returns what arrived."""

    def __init__(self, *groups: str) -> None:
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        for group in groups:
            async_to_sync(self.layer.group_add)(group, self.channel)

    def messages(self, window: float = 0.3) -> list[dict]:
        async def collect():
            found = []
            while True:
                try:
                    found.append(
                        await asyncio.wait_for(self.layer.receive(self.channel), timeout=window)
                    )
                except TimeoutError:
                    return found

        return async_to_sync(collect)()

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
