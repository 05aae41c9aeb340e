"""A circuit breaker per AI app, shared by every worker through Redis.

States (one Redis hash per app, changed only by atomic Lua scripts on the Redis clock):

- ``closed``: calls go through; each failure is added to a sliding window. When
  ``AI_BREAKER_FAILURES`` failures fall within ``AI_BREAKER_WINDOW_SECONDS`` it opens.
- ``open``: calls are skipped (the AI turn fails over to the next app at once) until
  ``AI_BREAKER_COOLDOWN_SECONDS`` have passed since it opened.
- ``half_open``: after the cool-down exactly one caller gets a probe (``allow`` answers
  ``"probe"``); everyone else is still skipped. The probe's success closes the breaker, its
  failure opens it again for another cool-down. A probe whose holder died is given to the next
  caller after ``AI_BREAKER_PROBE_SECONDS``.

Opening (not re-opening after a failed probe) sends ``apps.core.events.ai_app_breaker_opened``
after commit; monitoring turns it into an alert. Closing sends ``ai_app_breaker_closed``.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from apps.core import events
from apps.core.redis import get_redis, redis_key

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"

# KEYS: state hash. ARGV: cooldown ms, probe lease ms, probe token.
# Returns "closed" (go), "probe" (go, you are the probe) or "open" (skip).
_ALLOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then
  return 'closed'
end
if state == 'open' then
  local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')
  if now - opened < tonumber(ARGV[1]) then
    return 'open'
  end
end
-- open past its cool-down, or half-open: one probe at a time
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if state == 'half_open' and probe_until > now then
  return 'open'
end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', now + tonumber(ARGV[2]),
           'probe', ARGV[3])
return 'probe'
"""

# KEYS: state hash, failures zset. ARGV: threshold, window ms, member id, ttl ms.
# Returns the transition: "opened", "reopened" or "".
_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[4])
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now, 'probe_until', 0)
  redis.call('PEXPIRE', KEYS[1], ttl)
  return 'reopened'
end
if state == 'open' then
  return ''
end
redis.call('ZADD', KEYS[2], now, ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[2]) + 1000)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', now, 'probe_until', 0)
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('DEL', KEYS[2])
  return 'opened'
end
return ''
"""

# KEYS: state hash, failures zset. Returns the previous state.
_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('DEL', KEYS[1])
if state ~= 'closed' then
  redis.call('DEL', KEYS[2])
end
return state
"""


@dataclass(frozen=True)
class BreakerState:
    state: str
    failures: int


class AIAppBreaker:
    """The breaker of one AI app (see the module docstring). Cheap to build per call."""

    def __init__(self, *, org_id: int, ai_app_id: int, ai_app_name: str = "", client=None):
        self.org_id = org_id
        self.ai_app_id = ai_app_id
        self.ai_app_name = ai_app_name
        self.client = client or get_redis()
        self.state_key = redis_key("integrations", "ai-breaker", ai_app_id)
        self.failures_key = redis_key("integrations", "ai-breaker-failures", ai_app_id)

    def allow(self) -> str:
        """``"closed"`` or ``"probe"``: make the call; ``"open"``: skip this app. A Redis
        outage never blocks the AI: the call goes through."""
        try:
            result = self.client.eval(
                _ALLOW,
                1,
                self.state_key,
                int(settings.AI_BREAKER_COOLDOWN_SECONDS * 1000),
                int(settings.AI_BREAKER_PROBE_SECONDS * 1000),
                uuid.uuid4().hex,
            )
        except Exception:  # noqa: BLE001 - fail open
            logger.warning("ai breaker: Redis unavailable, letting app %s through", self.ai_app_id)
            return CLOSED
        return result.decode() if isinstance(result, bytes) else str(result)

    def record_failure(self, *, error: str = "") -> str:
        """Count one failed call; returns ``"opened"``, ``"reopened"`` or ``""``."""
        try:
            result = self.client.eval(
                _FAILURE,
                2,
                self.state_key,
                self.failures_key,
                settings.AI_BREAKER_FAILURES,
                int(settings.AI_BREAKER_WINDOW_SECONDS * 1000),
                uuid.uuid4().hex,
                int((settings.AI_BREAKER_COOLDOWN_SECONDS + 3600) * 1000),
            )
        except Exception:  # noqa: BLE001
            logger.warning(
                "ai breaker: Redis unavailable, failure of app %s not counted", self.ai_app_id
            )
            return ""
        transition = result.decode() if isinstance(result, bytes) else str(result or "")
        if transition == "opened":
            logger.warning("ai breaker: app %s opened (%s)", self.ai_app_id, error[:200])
            self._announce(events.ai_app_breaker_opened, error=error[:300])
        elif transition == "reopened":
            logger.warning("ai breaker: probe of app %s failed, open again", self.ai_app_id)
        return transition

    def record_success(self) -> str:
        """Close the breaker; returns the previous state."""
        try:
            result = self.client.eval(_SUCCESS, 2, self.state_key, self.failures_key)
        except Exception:  # noqa: BLE001
            return CLOSED
        previous = result.decode() if isinstance(result, bytes) else str(result)
        if previous != CLOSED:
            logger.info("ai breaker: app %s closed again", self.ai_app_id)
            self._announce(events.ai_app_breaker_closed)
        return previous

    def state(self) -> BreakerState:
        """The current state for display (``open`` past its cool-down reads ``half_open``)."""
        try:
            data = self.client.hgetall(self.state_key)
            failures = int(self.client.zcard(self.failures_key))
        except Exception:  # noqa: BLE001
            return BreakerState(CLOSED, 0)
        state = (data.get(b"state") or b"closed").decode()
        if state == OPEN:
            opened = int(data.get(b"opened_at") or 0)
            now_s, now_us = self.client.time()
            now = now_s * 1000 + now_us // 1000
            if now - opened >= settings.AI_BREAKER_COOLDOWN_SECONDS * 1000:
                state = HALF_OPEN
        return BreakerState(state, failures)

    def reset(self) -> None:
        self.client.delete(self.state_key, self.failures_key)

    def _announce(self, signal, **extra) -> None:
        kwargs = {
            "org_id": self.org_id,
            "ai_app_id": self.ai_app_id,
            "ai_app_name": self.ai_app_name,
            **extra,
        }

        def send() -> None:
            signal.send(sender=AIAppBreaker, **kwargs)

        transaction.on_commit(send)


def breaker_for(ai_app) -> AIAppBreaker:
    return AIAppBreaker(org_id=ai_app.org_id, ai_app_id=ai_app.pk, ai_app_name=ai_app.name)
