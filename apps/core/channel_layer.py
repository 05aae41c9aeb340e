"""The channel layer: channels-redis with a short blocking receive and a prompt cancel.

Each Daphne process receives its sockets' events through one blocking ``BZPOPMIN`` at a time,
made by whichever consumer holds the layer's receive lock. Cancelling a consumer inside that call
(a client disconnecting) waited for the call to return, because the Redis client finishes the
read to keep its connection usable; under load Daphne then logged "took too long to shut down and
was killed". Two guards:

- a block of ``CHANNELS_BLOCK_SECONDS`` (default 1 s) bounds the read; it costs one Redis round
  trip per idle second per process, not per socket;
- ``receive`` runs the library's receive as its own task. When the consumer is cancelled it asks
  that task to stop and waits for it at most ``CANCEL_GRACE_SECONDS``; a read that takes longer
  finishes in the background. The task still releases the receive lock and hands messages for the
  process's other sockets to their buffers, so nothing for a live socket is lost; a message for
  the socket that left has no reader either way. Normally the task stops within the grace, so the
  layer's bookkeeping (its receive count and event loop) is settled before the consumer returns.
"""

from __future__ import annotations

import asyncio

from channels_redis.core import RedisChannelLayer
from django.conf import settings

CANCEL_GRACE_SECONDS = 0.25


def _consume_outcome(task: asyncio.Task) -> None:
    """Retrieve a background receive's outcome so asyncio does not log it as never retrieved."""
    if not task.cancelled():
        task.exception()


class PromptRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.brpop_timeout = getattr(settings, "CHANNELS_BLOCK_SECONDS", 1)

    async def receive(self, channel):
        task = asyncio.ensure_future(super().receive(channel))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.wait({task}, timeout=CANCEL_GRACE_SECONDS)
            task.add_done_callback(_consume_outcome)  # runs at once when already done
            raise
