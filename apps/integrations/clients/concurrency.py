"""Redis-backed limit on AI requests in flight per organisation, across all processes.

A fair semaphore: holders live in a sorted set scored by lease expiry; waiters queue in a
second sorted set scored by a ticket from a counter, so slots go out in arrival (FIFO) order.
Both holders and waiters expire when their process stops refreshing them, so a crashed worker
cannot leak a slot or block the queue. Every state change is one atomic Lua script using the
Redis server clock (no skew between hosts).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from .errors import ConcurrencyTimeout

logger = logging.getLogger("apps.integrations.clients")

# KEYS: holders zset, queue zset, waiters zset (token -> waiter expiry), ticket counter
# ARGV: token, limit, lease ms, waiter ttl ms
# Returns 1 = slot acquired, 0 = still waiting.
_ACQUIRE = """
local holders, queue, waiters, counter = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local token, limit = ARGV[1], tonumber(ARGV[2])
local lease, waiter_ttl = tonumber(ARGV[3]), tonumber(ARGV[4])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)

redis.call('ZREMRANGEBYSCORE', holders, '-inf', now)
local dead = redis.call('ZRANGEBYSCORE', waiters, '-inf', now)
for _, w in ipairs(dead) do
  redis.call('ZREM', queue, w)
  redis.call('ZREM', waiters, w)
end

if redis.call('ZSCORE', holders, token) then
  return 1
end
if not redis.call('ZSCORE', queue, token) then
  redis.call('ZADD', queue, redis.call('INCR', counter), token)
end
local rank = redis.call('ZRANK', queue, token)
if rank + redis.call('ZCARD', holders) < limit then
  redis.call('ZADD', holders, now + lease, token)
  redis.call('ZREM', queue, token)
  redis.call('ZREM', waiters, token)
  for _, k in ipairs({holders, queue, waiters, counter}) do
    redis.call('PEXPIRE', k, lease + waiter_ttl)
  end
  return 1
end
redis.call('ZADD', waiters, now + waiter_ttl, token)
for _, k in ipairs({holders, queue, waiters, counter}) do
  redis.call('PEXPIRE', k, lease + waiter_ttl)
end
return 0
"""

# KEYS: holders, queue, waiters. ARGV: token.
_RELEASE = """
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return redis.call('ZREM', KEYS[1], ARGV[1])
"""

# KEYS: holders. ARGV: token, lease ms. Returns 1 if the lease was still held and is extended.
_REFRESH = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expiry = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not expiry or tonumber(expiry) <= now then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""

# KEYS: holders. Live holders only.
_COUNT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


class AIConcurrencyLimiter:
    """At most ``limit`` requests in flight for ``key`` (e.g. one key per organisation).

    ``acquire`` waits in FIFO order up to ``timeout`` seconds, then raises
    ``ConcurrencyTimeout``. A slot is leased for ``lease_seconds``: size it above the longest
    call (or call ``refresh``), since an expired lease lets someone else in.

        limiter = AIConcurrencyLimiter(redis, f"ai-inflight:org:{org.id}", limit=10)
        with limiter.slot():
            client.chat(...)
    """

    def __init__(
        self,
        redis_client,
        key: str,
        limit: int = 10,
        timeout: float = 30.0,
        *,
        lease_seconds: float = 300.0,
        poll_interval: float = 0.02,
        waiter_ttl_seconds: float = 5.0,
    ) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.redis = redis_client
        self.key = key
        self.limit = limit
        self.timeout = timeout
        self.lease_ms = int(lease_seconds * 1000)
        self.poll_interval = poll_interval
        # A waiter that stops polling for this long (crashed) is dropped from the queue.
        self.waiter_ttl_ms = max(int(waiter_ttl_seconds * 1000), int(poll_interval * 4000))
        # Hash tag keeps all four keys in one Redis Cluster slot.
        base = "{" + key + "}"
        self._keys = [f"{base}:holders", f"{base}:queue", f"{base}:waiters", f"{base}:ticket"]
        self._acquire = redis_client.register_script(_ACQUIRE)
        self._release = redis_client.register_script(_RELEASE)
        self._refresh = redis_client.register_script(_REFRESH)
        self._count = redis_client.register_script(_COUNT)

    def acquire(self, timeout: float | None = None) -> str:
        """Wait for a slot; returns the token to pass to ``release``."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        args = [token, self.limit, self.lease_ms, self.waiter_ttl_ms]
        try:
            while True:
                if self._acquire(keys=self._keys, args=args) == 1:
                    return token
                if time.monotonic() >= deadline:
                    raise ConcurrencyTimeout(
                        f"no AI slot free for {self.key} within the wait timeout "
                        f"({self.limit} in flight)"
                    )
                time.sleep(self.poll_interval)
        except BaseException:
            # Leave the queue (and drop a slot granted in a race with the timeout).
            self._release(keys=self._keys[:3], args=[token])
            raise

    def release(self, token: str) -> None:
        self._release(keys=self._keys[:3], args=[token])

    def refresh(self, token: str) -> bool:
        """Extend a held lease; False when it had already expired (the slot was lost)."""
        return self._refresh(keys=self._keys[:1], args=[token, self.lease_ms]) == 1

    def in_flight(self) -> int:
        return int(self._count(keys=self._keys[:1]))

    def queued(self) -> int:
        return int(self.redis.zcard(self._keys[1]))

    @contextmanager
    def slot(self, timeout: float | None = None) -> Iterator[str]:
        """Hold a slot for the block. The lease is renewed every third of ``lease_seconds``
        while the block runs, so a short lease suffices: a worker killed mid-call stops
        renewing and its slot is free again within ``lease_seconds`` (a 300 s lease once
        stalled the pipeline for minutes after a few kills)."""
        token = self.acquire(timeout)
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._renew, args=(token, stop), name="ai-slot-lease", daemon=True
        )
        renewer.start()
        try:
            yield token
        finally:
            stop.set()
            self.release(token)

    def _renew(self, token: str, stop: threading.Event) -> None:
        interval = max(0.05, self.lease_ms / 3000)
        while not stop.wait(interval):
            try:
                if not self.refresh(token):
                    return  # lost (expired): the call goes on, the slot is someone else's
            except Exception:  # noqa: BLE001 - Redis hiccup: try again next interval
                logger.warning("ai slot lease renewal failed", exc_info=True)
