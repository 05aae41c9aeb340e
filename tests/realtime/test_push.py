"""The push helper (apps.core.realtime) from sync code, against the real Redis (pub/sub)."""

import multiprocessing
import os
import time

import redis
from channels.layers import get_channel_layer
from django.conf import settings

from apps.core import realtime, ws_hub


class _Listener:
    """What a Daphne process's hub hears: the pub/sub channel of each group (apps.core.ws_hub)."""

    def __init__(self, *groups: str) -> None:
        self.layer = get_channel_layer()
        self.pubsub = redis.Redis.from_url(settings.REDIS_URL).pubsub()
        self.pubsub.subscribe(*(ws_hub.hub_channel(self.layer, group) for group in groups))
        confirmed = 0
        while confirmed < len(groups):  # Redis subscribed us before anything is pushed
            confirmed += self._next(3.0)["type"] == "subscribe"

    def _next(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = self.pubsub.get_message(timeout=deadline - time.monotonic())
            if raw is not None:
                return raw
        raise TimeoutError

    def receive_one(self, timeout: float = 3.0) -> dict:
        while True:
            raw = self._next(timeout)
            if raw["type"] == "message":
                return self.layer.deserialize(raw["data"])


def test_push_from_sync_code_reaches_every_group():
    groups = [realtime.group_for_conversation(1, 7), realtime.group_for_user(1, 3)]
    listeners = [_Listener(group) for group in groups]
    assert realtime.push("new_message", {"id": 42}, groups=groups) is True
    for listener, group in zip(listeners, groups, strict=True):
        message = listener.receive_one()
        assert message["group"] == group
        assert message["type"] == realtime.CHANNEL_MESSAGE_TYPE
        assert message["event"]["type"] == "new_message"
        assert message["event"]["data"] == {"id": 42}
        assert set(message["event"]) == {"type", "data", "ts", "id"}


def test_push_never_raises_and_counts_failures(monkeypatch):
    class BrokenConnection:
        async def publish(self, channel, payload):
            raise ConnectionError("Redis is down")

    class BrokenLayer:
        prefix = "asgi"

        def consistent_hash(self, value):
            return 0

        def create_pool(self, index):
            return type("Pool", (), {"connection_kwargs": {}})

        def connection(self, index):
            return BrokenConnection()

        def serialize(self, message):
            return b"x"

    monkeypatch.setattr(realtime, "get_channel_layer", lambda: BrokenLayer())
    before = realtime.push_failure_count()
    assert realtime.push("new_message", {"id": 1}, groups=["org.1.all"]) is False
    assert realtime.push_failure_count() == before + 1


def _push_in_child(group: str, queue) -> None:
    queue.put(realtime.push("stats_update", {"pid": os.getpid()}, groups=[group]))


def test_push_works_in_a_forked_child_after_the_parent_pushed():
    """Celery's prefork pool forks after import: the child must not reuse the parent's loop."""
    group = realtime.group_for_monitor(99)
    listener = _Listener(group)
    assert realtime.push("stats_update", {"pid": os.getpid()}, groups=[group])
    listener.receive_one()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_push_in_child, args=(group, queue))
    child.start()
    child.join(10)
    assert queue.get(timeout=5) is True
    assert listener.receive_one()["event"]["data"]["pid"] == child.pid
