"""The channel layer: channels-redis with a short blocking receive and cancellable sends.

Each Daphne process receives its sockets' events through one blocking ``BZPOPMIN`` at a time,
made by whichever consumer holds the layer's receive lock. Cancelling a consumer inside that call
(a client disconnecting) waits for the call to return, because the Redis client finishes the read
to keep its connection usable. The library's default block of five seconds made a consumer linger
that long after its client left; a block of ``CHANNELS_BLOCK_SECONDS`` (default 1 s) bounds the
wait well inside Daphne's application close timeout. It costs one Redis round trip per idle
second per process, not per socket.

**Cancellable sends.** redis-py writes every command through ``asyncio.wait_for`` when the
connection has a socket timeout (ours does: ``socket_timeout`` in ``CHANNEL_LAYERS``). On Python
3.11, ``wait_for`` drops a cancellation that arrives once the write has finished but before the
caller resumed: it returns the write's result and the caller carries on (fixed in 3.12, where
``wait_for`` is built on ``asyncio.timeout``). A consumer whose client left at that moment had its
receive go on looping ``BZPOPMIN`` until Daphne killed it four seconds later
(``tests/integration/test_ws_shutdown_live.py``). The window is a loop iteration or two per
command, so it is hit when a receive sends several commands in a row as its consumer is
cancelled: typically right after another socket's cancelled receive dropped its connection and
this one reconnects (HELLO, CLIENT, SELECT, then EVAL and BZPOPMIN). The layer's connections
(``_CancellableSend``) compare the task's pending cancellations before and after each write and
raise the dropped one, after closing the connection as redis-py does for any cancelled write.

An earlier version ran the library's receive as a background task and let a cancelled consumer
go after a quarter second. The orphaned read kept the layer's receive lock and event loop bound to
a loop that could close under it ("Two event loops are trying to receive() on one channel layer
at once!", and an interpreter that never exited); a bounded read is simpler and safe.
"""

from __future__ import annotations

import asyncio

from channels_redis.core import RedisChannelLayer
from django.conf import settings


class _CancellableSend:
    """Mixed into the layer's Redis connection class: a write during which the task was
    cancelled raises ``CancelledError`` even when ``asyncio.wait_for`` swallowed it."""

    async def send_packed_command(self, *args, **kwargs) -> None:
        task = asyncio.current_task()
        requested = task.cancelling() if task is not None else 0
        await super().send_packed_command(*args, **kwargs)
        if task is not None and task.cancelling() > requested:
            # The command went out but its reply will not be read: drop the connection, as
            # redis-py does when a cancellation reaches a write, so nobody reads that reply.
            await self.disconnect(nowait=True)
            raise asyncio.CancelledError


_cancellable_classes: dict[type, type] = {}


def cancellable_connection_class(connection_class: type) -> type:
    """``connection_class`` (TCP, TLS or Unix socket) with ``_CancellableSend`` mixed in."""
    if issubclass(connection_class, _CancellableSend):
        return connection_class
    cancellable = _cancellable_classes.get(connection_class)
    if cancellable is None:
        cancellable = _cancellable_classes[connection_class] = type(
            connection_class.__name__, (_CancellableSend, connection_class), {}
        )
    return cancellable


class PromptRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.brpop_timeout = getattr(settings, "CHANNELS_BLOCK_SECONDS", 1)

    def create_pool(self, index):
        pool = super().create_pool(index)
        pool.connection_class = cancellable_connection_class(pool.connection_class)
        return pool
