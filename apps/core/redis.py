"""One pooled Redis client per process, for limiters, locks, presence and counters."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.lru_cache(maxsize=1)
def get_redis() -> redis.Redis:
    return redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=5, socket_connect_timeout=2, health_check_interval=30
    )


def redis_key(*parts: object) -> str:
    """A key under the deployment's prefix, so tests and several deployments can share a Redis."""
    prefix = settings.CACHES["default"].get("KEY_PREFIX", "sa")
    return ":".join([prefix, *(str(p) for p in parts)])
