"""The channel layer: channels-redis with a short blocking receive.

Each Daphne process receives its sockets' events through one blocking ``BZPOPMIN`` at a time,
made by whichever consumer holds the layer's receive lock. Cancelling a consumer inside that call
(a client disconnecting) waits for the call to return, because the Redis client finishes the read
to keep its connection usable. The library's default block of five seconds made a consumer linger
that long after its client left; a block of ``CHANNELS_BLOCK_SECONDS`` (default 1 s) bounds the
wait well inside Daphne's application close timeout. It costs one Redis round trip per idle
second per process, not per socket.

An earlier version ran the library's receive as a background task and let a cancelled consumer
go after a quarter second. The orphaned read kept the layer's receive lock and event loop bound to
a loop that could close under it ("Two event loops are trying to receive() on one channel layer
at once!", and an interpreter that never exited); a bounded read is simpler and safe.
"""

from __future__ import annotations

from channels_redis.core import RedisChannelLayer
from django.conf import settings


class PromptRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.brpop_timeout = getattr(settings, "CHANNELS_BLOCK_SECONDS", 1)
