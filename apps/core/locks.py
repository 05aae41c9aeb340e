"""Redis locks with a lifetime: held by one process at a time across every host, released by
their holder only (a token compared atomically), and freed by expiry when the holder crashes.

    lock = RedisLock(redis_key("conv", 12, "ai-turn"), ttl=180)
    if lock.acquire():
        try:
            ...
        finally:
            lock.release()
"""

from __future__ import annotations

import uuid

from apps.core.redis import get_redis

# Delete / extend only when the stored token is ours (another holder may own it after expiry).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class RedisLock:
    """A non-blocking mutual-exclusion lock with a TTL (seconds)."""

    def __init__(self, key: str, *, ttl: float, client=None) -> None:
        self.key = key
        self.ttl_ms = max(1, int(ttl * 1000))
        self.client = client or get_redis()
        self.token = uuid.uuid4().hex
        self.held = False

    def acquire(self) -> bool:
        self.held = bool(self.client.set(self.key, self.token, nx=True, px=self.ttl_ms))
        return self.held

    def extend(self) -> bool:
        """Restart the lifetime; False when the lock was lost (expired and maybe re-taken)."""
        return bool(self.client.eval(_EXTEND, 1, self.key, self.token, self.ttl_ms))

    def release(self) -> bool:
        if not self.held:
            return False
        self.held = False
        return bool(self.client.eval(_RELEASE, 1, self.key, self.token))

    def __enter__(self) -> RedisLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
