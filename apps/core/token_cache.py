"""Per-process caches validated by Redis tokens (billing's metering configuration, the AI turn's
reply app lists).

An entry is kept per key (an organisation) with the tokens it was loaded under. Each use reads
the current tokens in one Redis round trip (``tokens``): a writer changes a token
(``ProcessCache.invalidate``) at once and again after its commit, so every process reloads on
its next use, including a reader that loaded the old rows between the two. A missing token
(Redis flushed) is created anew, so it never matches an old entry; without Redis nothing is
cached. An entry also expires after the cache's lifetime setting (writes that bypass the ORM's
signals).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Hashable
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.core.redis import get_redis

logger = logging.getLogger(__name__)


def tokens(keys: list[str], *, what: str) -> tuple[str, ...] | None:
    """The current tokens of ``keys``, created when missing; None without Redis."""
    try:
        client = get_redis()
        values = client.mget(keys)
        if None in values:
            pipe = client.pipeline(transaction=False)
            for key, value in zip(keys, values, strict=True):
                if value is None:
                    pipe.set(key, uuid.uuid4().hex, nx=True)
            pipe.mget(keys)
            values = pipe.execute()[-1]
    except Exception:  # noqa: BLE001 - the cache is an optimisation; fall back to the database
        logger.warning("%s: cache tokens unavailable", what, exc_info=True)
        return None
    return tuple(values)


class ProcessCache:
    """Entries (objects with ``token`` and ``loaded_at``) per key, valid while their tokens are
    current and younger than ``settings.<lifetime_setting>`` seconds."""

    def __init__(self, what: str, lifetime_setting: str, max_entries: int = 10_000) -> None:
        self.what = what
        self.lifetime_setting = lifetime_setting
        self.max_entries = max_entries  # keys cached per process (cleared wholesale beyond)
        self.entries: dict[Hashable, Any] = {}

    def valid(self, key: Hashable, token: tuple | None) -> Any | None:
        entry = self.entries.get(key)
        lifetime = getattr(settings, self.lifetime_setting)
        if (
            entry is not None
            and token is not None
            and entry.token == token
            and time.monotonic() - entry.loaded_at < lifetime
        ):
            return entry
        return None

    def keep(self, key: Hashable, entry: Any) -> Any:
        """Remember ``entry`` (loaded under ``entry.token``; never without a token)."""
        if entry.token is None:
            self.entries.pop(key, None)
            return entry
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key] = entry
        return entry

    def invalidate(self, token_key: str, *, key: Hashable | None = None) -> None:
        """Change ``token_key`` now and after commit, and drop this process's entry for ``key``
        (all of them when ``key`` is None)."""

        def bump() -> None:
            if key is None:
                self.entries.clear()
            else:
                self.entries.pop(key, None)
            try:
                get_redis().set(token_key, uuid.uuid4().hex)
            except Exception:  # noqa: BLE001 - entries still expire after their lifetime
                logger.warning("%s: could not invalidate the cache", self.what, exc_info=True)

        bump()
        transaction.on_commit(bump)

    def clear(self) -> None:
        self.entries.clear()
