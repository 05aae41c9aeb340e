"""The push helper (apps.core.realtime) from sync code, against the real Redis channel layer."""

import asyncio
import multiprocessing
import os

from channels.layers import get_channel_layer

from apps.core import realtime


def _receive_one(channel: str, timeout: float = 3.0) -> dict:
    layer = get_channel_layer()

    async def receive():
        return await asyncio.wait_for(layer.receive(channel), timeout)

    return asyncio.run(receive())


def _subscribe(group: str) -> str:
    layer = get_channel_layer()

    async def subscribe():
        channel = await layer.new_channel()
        await layer.group_add(group, channel)
        return channel

    return asyncio.run(subscribe())


def test_push_from_sync_code_reaches_every_group():
    groups = [realtime.group_for_conversation(1, 7), realtime.group_for_user(1, 3)]
    channels = [_subscribe(group) for group in groups]
    assert realtime.push("new_message", {"id": 42}, groups=groups) is True
    for channel in channels:
        message = _receive_one(channel)
        assert message["type"] == realtime.CHANNEL_MESSAGE_TYPE
        assert message["event"]["type"] == "new_message"
        assert message["event"]["data"] == {"id": 42}
        assert set(message["event"]) == {"type", "data", "ts", "id"}


def test_push_never_raises_and_counts_failures(monkeypatch):
    class BrokenLayer:
        async def group_send(self, group, message):
            raise ConnectionError("Redis is down")

    monkeypatch.setattr(realtime, "get_channel_layer", lambda: BrokenLayer())
    before = realtime.push_failure_count()
    assert realtime.push("new_message", {"id": 1}, groups=["org.1.all"]) is False
    assert realtime.push_failure_count() == before + 1


def _push_in_child(group: str, queue) -> None:
    queue.put(realtime.push("stats_update", {"pid": os.getpid()}, groups=[group]))


def test_push_works_in_a_forked_child_after_the_parent_pushed():
    """Celery's prefork pool forks after import: the child must not reuse the parent's loop."""
    group = realtime.group_for_monitor(99)
    channel = _subscribe(group)
    assert realtime.push("stats_update", {"pid": os.getpid()}, groups=[group])
    _receive_one(channel)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_push_in_child, args=(group, queue))
    child.start()
    child.join(10)
    assert queue.get(timeout=5) is True
    assert _receive_one(channel)["event"]["data"]["pid"] == child.pid
