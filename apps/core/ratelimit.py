"""Sliding-window-log rate limiter in Redis, correct across any number of processes and hosts.

One Lua script checks several limits at once (e.g. per account per minute, per account per
day, per organisation, global) and either admits the request in all of them or in none, using
Redis's own clock (``TIME``), so workers on hosts with skewed clocks agree. Each limit is a
sorted set of admitted requests scored by their time in microseconds; a request is admitted
when, after dropping entries older than the window, fewer than ``limit`` remain. So at no
moment does any window of ``window`` length hold more than ``limit`` admissions: the strict
guarantee the WeChat send pipeline needs (a token bucket would allow a burst at window edges).

A refusal tells the caller how long to wait until the oldest blocking entry leaves its window,
so a Celery task can reschedule itself with that countdown instead of sleeping.

API::

    decision = acquire([Limit(redis_key("rl", "acct", 7, "min"), 40, 60_000), ...])
    if not decision.allowed:
        task.apply_async(countdown=decision.retry_after)
    ...
    release(limits, decision.token)   # give the admission back (the work did not happen)
    usage(limit)                      # admissions currently inside the window
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from apps.core.redis import get_redis

# KEYS: one sorted set per limit. ARGV: token, then (limit, window_ms) per key.
# Returns {1, 0, token-member} when admitted, {0, wait_us, index-of-blocking-limit} when not.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local token = ARGV[1]
local wait, blocking = 0, 0
for i, key in ipairs(KEYS) do
  local limit = tonumber(ARGV[2 * i])
  local window = tonumber(ARGV[2 * i + 1]) * 1000
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  local count = redis.call('ZCARD', key)
  if count >= limit then
    -- The entry that must leave the window before one more fits.
    local entry = redis.call('ZRANGE', key, count - limit, count - limit, 'WITHSCORES')
    local w = tonumber(entry[2]) + window - now
    if w < 1 then w = 1 end
    if w > wait then wait = w; blocking = i end
  end
end
if blocking > 0 then
  return {0, wait, blocking}
end
-- tostring() of a 16-digit number would use exponent notation: build it from TIME's parts.
local member = t[1] .. string.format('%06d', tonumber(t[2])) .. ':' .. token
for i, key in ipairs(KEYS) do
  local window = tonumber(ARGV[2 * i + 1])
  redis.call('ZADD', key, now, member)
  redis.call('PEXPIRE', key, window + 1000)
end
return {1, 0, member}
"""

# KEYS: the sets; ARGV: the member returned by acquire.
_RELEASE = """
local removed = 0
for _, key in ipairs(KEYS) do
  removed = removed + redis.call('ZREM', key, ARGV[1])
end
return removed
"""

# KEYS[1]: one set; ARGV[1]: window ms. Admissions currently inside the window.
_USAGE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
return redis.call('ZCOUNT', KEYS[1], now - tonumber(ARGV[1]) * 1000, '+inf')
"""


@dataclass(frozen=True)
class Limit:
    """At most ``limit`` admissions in any window of ``window_ms`` milliseconds under ``key``
    (build the key with ``apps.core.redis.redis_key``)."""

    key: str
    limit: int
    window_ms: int
    name: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: float = 0.0  # seconds until a retry can succeed (0 when allowed)
    blocked_by: Limit | None = None
    token: str = ""  # the admission's member, for ``release``


class _Scripts:
    def __init__(self) -> None:
        client = get_redis()
        self.client = client
        self.acquire = client.register_script(_ACQUIRE)
        self.release = client.register_script(_RELEASE)
        self.usage = client.register_script(_USAGE)


_scripts: _Scripts | None = None


def _get_scripts() -> _Scripts:
    global _scripts
    client = get_redis()
    if _scripts is None or _scripts.client is not client:
        _scripts = _Scripts()
    return _scripts


def acquire(limits: Sequence[Limit]) -> Decision:
    """Admit one request in every limit atomically, or in none and say how long to wait."""
    limits = [limit for limit in limits if limit.limit > 0]
    if not limits:
        return Decision(allowed=True)
    args: list = [uuid.uuid4().hex]
    for limit in limits:
        args.extend([int(limit.limit), int(limit.window_ms)])
    allowed, wait_us, extra = _get_scripts().acquire(keys=[lim.key for lim in limits], args=args)
    if int(allowed) == 1:
        token = extra.decode() if isinstance(extra, bytes) else str(extra)
        return Decision(allowed=True, token=token)
    return Decision(
        allowed=False, retry_after=int(wait_us) / 1_000_000, blocked_by=limits[int(extra) - 1]
    )


def release(limits: Sequence[Limit], token: str) -> int:
    """Give back an admission whose work did not happen (e.g. another worker won the claim)."""
    if not token:
        return 0
    return int(_get_scripts().release(keys=[lim.key for lim in limits], args=[token]))


def usage(limit: Limit) -> int:
    """Admissions currently inside ``limit``'s window."""
    return int(_get_scripts().usage(keys=[limit.key], args=[int(limit.window_ms)]))
