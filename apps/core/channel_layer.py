"""The channel layer: channels-redis with a short blocking receive.

Each Daphne process receives its sockets' events through one blocking ``BZPOPMIN`` at a time.
Cancelling a consumer that is inside that call (a client disconnecting) waits for the call to
return, because the Redis client finishes the read to keep its connection usable. With the
library's 5 s block, a disconnect could keep the consumer alive for seconds, and Daphne logged
"took too long to shut down and was killed". A block of ``CHANNELS_BLOCK_SECONDS`` (default 1 s)
bounds that wait; it costs one Redis round trip per idle second per process, not per socket.
"""

from __future__ import annotations

from channels_redis.core import RedisChannelLayer
from django.conf import settings


class PromptRedisChannelLayer(RedisChannelLayer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.brpop_timeout = getattr(settings, "CHANNELS_BLOCK_SECONDS", 1)
