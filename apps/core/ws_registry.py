"""The WebSocket connection registry in Redis: per-user limit, per-org listing, presence, counters.

Every live socket holds a *lease* (a sorted-set member whose score is its expiry time, renewed at
each heartbeat). Readers ignore and prune expired members, so the slots of a Daphne process that
crashed without running ``disconnect()`` free themselves after ``WS_CONNECTION_LEASE_SECONDS``;
nothing about connections lives only in a process's memory.

Keys (all through ``redis_key``)::

    ws:user:<user_id>                 zset conn_id -> lease expiry  (the per-user limit, all orgs)
    ws:org:<org_id>                   zset conn_id -> lease expiry  (the management API listing)
    ws:org:<org_id>:user:<user_id>    zset conn_id -> lease expiry  (presence per org)
    ws:org:<org_id>:online            zset user_id -> lease expiry  (online users)
    ws:org:<org_id>:stats             hash of counters (connects, disconnects, messages in/out,
                                      errors, refused)
    ws:conn:<conn_id>                 JSON description of one connection, expiring with its lease
    ws:orgs                           zset org_id -> lease expiry  (orgs with live sockets)

The async functions serve the consumers (one ``redis.asyncio`` client per event loop); the sync
ones serve the management API and Celery tasks.
"""

from __future__ import annotations

import asyncio
import json
import time
import weakref
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

from apps.core.redis import get_redis, redis_key

STATS_FIELDS = ("connects", "disconnects", "refused", "messages_in", "messages_out", "errors")
STATS_TTL_SECONDS = 7 * 24 * 3600

# KEYS: user, org, orguser, online, info, orgs, stats
# ARGV: conn_id, now, expiry, limit, info_json, ttl_ms, user_id, org_id
_REGISTER = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  redis.call('HINCRBY', KEYS[7], 'refused', 1)
  return {0, redis.call('ZCARD', KEYS[1])}
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
local n = redis.call('ZCARD', KEYS[3])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[7])
redis.call('PEXPIRE', KEYS[4], ARGV[6])
redis.call('SET', KEYS[5], ARGV[5], 'PX', ARGV[6])
redis.call('ZADD', KEYS[6], ARGV[3], ARGV[8])
redis.call('PEXPIRE', KEYS[6], ARGV[6])
redis.call('HINCRBY', KEYS[7], 'connects', 1)
redis.call('EXPIRE', KEYS[7], STATS_TTL)
return {1, n}
""".replace("STATS_TTL", str(STATS_TTL_SECONDS))

# KEYS: user, org, orguser, online, info, orgs, stats
# ARGV: conn_id, expiry, ttl_ms, info_json, user_id, org_id, messages_in, messages_out, errors
_REFRESH = """
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[3], ARGV[3])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[5])
redis.call('PEXPIRE', KEYS[4], ARGV[3])
redis.call('SET', KEYS[5], ARGV[4], 'PX', ARGV[3])
redis.call('ZADD', KEYS[6], ARGV[2], ARGV[6])
redis.call('PEXPIRE', KEYS[6], ARGV[3])
if tonumber(ARGV[7]) > 0 then redis.call('HINCRBY', KEYS[7], 'messages_in', ARGV[7]) end
if tonumber(ARGV[8]) > 0 then redis.call('HINCRBY', KEYS[7], 'messages_out', ARGV[8]) end
if tonumber(ARGV[9]) > 0 then redis.call('HINCRBY', KEYS[7], 'errors', ARGV[9]) end
return 1
"""

# KEYS: user, org, orguser, online, info, stats
# ARGV: conn_id, now, user_id, messages_in, messages_out, errors
# Returns the user's remaining live connections in the org (0 = the user went offline there).
_UNREGISTER = """
local existed = redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', ARGV[2])
local n = redis.call('ZCARD', KEYS[3])
if n == 0 then redis.call('ZREM', KEYS[4], ARGV[3]) end
redis.call('DEL', KEYS[5])
redis.call('HINCRBY', KEYS[6], 'disconnects', existed)
if tonumber(ARGV[4]) > 0 then redis.call('HINCRBY', KEYS[6], 'messages_in', ARGV[4]) end
if tonumber(ARGV[5]) > 0 then redis.call('HINCRBY', KEYS[6], 'messages_out', ARGV[5]) end
if tonumber(ARGV[6]) > 0 then redis.call('HINCRBY', KEYS[6], 'errors', ARGV[6]) end
return n
"""


def _user_key(user_id: int) -> str:
    return redis_key("ws", "user", user_id)


def _org_key(org_id: int) -> str:
    return redis_key("ws", "org", org_id)


def _org_user_key(org_id: int, user_id: int) -> str:
    return redis_key("ws", "org", org_id, "user", user_id)


def _online_key(org_id: int) -> str:
    return redis_key("ws", "org", org_id, "online")


def _stats_key(org_id: int) -> str:
    return redis_key("ws", "org", org_id, "stats")


def _info_key(conn_id: str) -> str:
    return redis_key("ws", "conn", conn_id)


def _orgs_key() -> str:
    return redis_key("ws", "orgs")


def lease_seconds() -> float:
    return float(settings.WS_CONNECTION_LEASE_SECONDS)


@dataclass
class Counters:
    """Per-connection counters flushed to Redis at each lease renewal (not per message)."""

    messages_in: int = 0
    messages_out: int = 0
    errors: int = 0

    def take(self) -> tuple[int, int, int]:
        values = (self.messages_in, self.messages_out, self.errors)
        self.messages_in = self.messages_out = self.errors = 0
        return values


# --- async side (consumers) ----------------------------------------------------------------------

_clients: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _async_client() -> tuple[aioredis.Redis, dict[str, Any]]:
    """One client (and its registered scripts) per event loop: asyncio connections are bound to
    the loop that opened them."""
    loop = asyncio.get_running_loop()
    entry = _clients.get(loop)
    if entry is None:
        # A blocking pool: a reconnect storm waits for a free connection instead of failing.
        pool = aioredis.BlockingConnectionPool.from_url(
            settings.REDIS_URL,
            max_connections=int(settings.WS_REDIS_MAX_CONNECTIONS),
            timeout=20,
            socket_timeout=5,
            socket_connect_timeout=2,
        )
        client = aioredis.Redis(connection_pool=pool)
        scripts = {
            "register": client.register_script(_REGISTER),
            "refresh": client.register_script(_REFRESH),
            "unregister": client.register_script(_UNREGISTER),
        }
        entry = (client, scripts)
        _clients[loop] = entry
    return entry


def _keys(org_id: int, user_id: int, conn_id: str) -> list[str]:
    return [
        _user_key(user_id),
        _org_key(org_id),
        _org_user_key(org_id, user_id),
        _online_key(org_id),
        _info_key(conn_id),
        _orgs_key(),
        _stats_key(org_id),
    ]


async def register(
    *, org_id: int, user_id: int, conn_id: str, info: dict[str, Any], limit: int
) -> tuple[bool, int]:
    """Take a slot. Returns ``(allowed, n)``: n is the user's live connections in this org after
    registering (1 means the user just came online there), or their total when refused."""
    _client, scripts = _async_client()
    now = time.time()
    lease = lease_seconds()
    allowed, count = await scripts["register"](
        keys=_keys(org_id, user_id, conn_id),
        args=[
            conn_id,
            now,
            now + lease,
            limit,
            json.dumps(info),
            int(lease * 1000),
            user_id,
            org_id,
        ],
    )
    return bool(allowed), int(count)


async def refresh(
    *, org_id: int, user_id: int, conn_id: str, info: dict[str, Any], counters: Counters
) -> None:
    _client, scripts = _async_client()
    lease = lease_seconds()
    messages_in, messages_out, errors = counters.take()
    await scripts["refresh"](
        keys=_keys(org_id, user_id, conn_id),
        args=[
            conn_id,
            time.time() + lease,
            int(lease * 1000),
            json.dumps(info),
            user_id,
            org_id,
            messages_in,
            messages_out,
            errors,
        ],
    )


async def unregister(*, org_id: int, user_id: int, conn_id: str, counters: Counters) -> int:
    """Free the slot; returns the user's remaining live connections in the org."""
    _client, scripts = _async_client()
    keys = _keys(org_id, user_id, conn_id)
    del keys[5]  # the orgs index is pruned by expiry, not per connection
    messages_in, messages_out, errors = counters.take()
    remaining = await scripts["unregister"](
        keys=keys,
        args=[conn_id, time.time(), user_id, messages_in, messages_out, errors],
    )
    return int(remaining)


# --- sync side (management API, tasks) -----------------------------------------------------------


def connections_for_org(org_id: int, *, user_id: int | None = None) -> list[dict[str, Any]]:
    """Live connections of one organisation (optionally one user), oldest first."""
    client = get_redis()
    now = time.time()
    key = _org_user_key(org_id, user_id) if user_id is not None else _org_key(org_id)
    conn_ids = [c.decode() for c in client.zrangebyscore(key, now, "+inf")]
    if not conn_ids:
        return []
    raw = client.mget([_info_key(c) for c in conn_ids])
    rows = []
    for conn_id, value in zip(conn_ids, raw, strict=True):
        if value is None:
            continue  # expired between the two reads
        info = json.loads(value)
        info["connection_id"] = conn_id
        rows.append(info)
    rows.sort(key=lambda row: (row.get("connected_at", ""), row["connection_id"]))
    return rows


def online_user_ids(org_id: int) -> list[int]:
    client = get_redis()
    return sorted(int(u) for u in client.zrangebyscore(_online_key(org_id), time.time(), "+inf"))


def counters_for_org(org_id: int) -> dict[str, int]:
    raw = get_redis().hgetall(_stats_key(org_id))
    values = {k.decode(): int(v) for k, v in raw.items()}
    return {field: values.get(field, 0) for field in STATS_FIELDS}


def orgs_with_connections() -> list[int]:
    client = get_redis()
    return sorted(int(o) for o in client.zrangebyscore(_orgs_key(), time.time(), "+inf"))


def prune_expired_presence(org_id: int) -> list[int]:
    """Drop users whose leases all expired (their process died); returns their ids so the caller
    can announce them offline."""
    client = get_redis()
    now = time.time()
    key = _online_key(org_id)
    expired = [int(u) for u in client.zrangebyscore(key, "-inf", now)]
    gone = []
    for user_id in expired:
        if client.zcount(_org_user_key(org_id, user_id), now, "+inf"):
            continue  # another of the user's sockets is still alive (its refresh will fix up)
        if client.zrem(key, user_id):
            gone.append(user_id)
    client.zremrangebyscore(_org_key(org_id), "-inf", now)
    return gone
