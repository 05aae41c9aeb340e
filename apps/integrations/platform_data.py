"""Platform data is data: values a WeChat platform sends never block a core flow.

Login, contact sync, group member lists, friend requests, inbound messages and send results
store what the platform says about cosmetic or descriptive fields (nicknames, remarks, avatar
URLs, sex, labels, timestamps, ids of other people). Such a value may be malformed, too long or
of an unexpected type. The storing services pass every such field through these helpers:

- ``text``: any value to storable text (``None`` -> ""; numbers -> their digits; lists/dicts
  dropped), NUL and lone surrogates replaced, cut to the column's length;
- ``url``: like ``text`` (URLs are stored as text: Django's URL validator must not refuse a
  platform URL), but a value that is not an http(s) URL or is longer than the column is dropped;
- ``small_int`` / ``enum``: a value out of range or not among the choices is dropped (None /
  the default);
- ``timestamp``: unix seconds (or milliseconds) to an aware datetime, or None when absurd.

A dropped or cut value is logged once as a warning with the field name (never the value) and
counted in Redis (``platform_data_counts()``, shown by ``manage.py platform_data_report``), so a
platform change is noticed without losing the message, the contact or the login.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

logger = logging.getLogger("apps.integrations.platform_data")

_SURROGATE = re.compile("[\ud800-\udfff]")
_COUNTER_KEY = ("integrations", "platform-data")


def _count(field: str, what: str) -> None:
    logger.warning("platform data: %s of %s", what, field)
    try:
        from apps.core.redis import get_redis, redis_key

        get_redis().hincrby(redis_key(*_COUNTER_KEY), f"{field}:{what}", 1)
    except Exception:  # noqa: BLE001 - counting must never break the flow it protects
        logger.debug("platform data: counter unavailable")


def platform_data_counts() -> dict[str, int]:
    """``{"<field>:<dropped|cut>": count}`` since the counters were last reset."""
    from apps.core.redis import get_redis, redis_key

    raw = get_redis().hgetall(redis_key(*_COUNTER_KEY))
    return {k.decode(): int(v) for k, v in raw.items()}


def platform_data_counts_reset() -> None:
    from apps.core.redis import get_redis, redis_key

    get_redis().delete(redis_key(*_COUNTER_KEY))


def _storable(value: str) -> str:
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return _SURROGATE.sub("\ufffd", value)


def text(value: Any, max_length: int, *, field: str) -> str:
    """Storable text of at most ``max_length`` characters (see the module docstring)."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool):
        value = "1" if value else "0"
    elif isinstance(value, int):
        value = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            _count(field, "dropped")
            return ""
        value = str(int(value)) if value.is_integer() else str(value)
    elif not isinstance(value, str):
        _count(field, "dropped")
        return ""
    value = _storable(value)
    if len(value) > max_length:
        _count(field, "cut")
        value = value[:max_length]
    return value


def url(value: Any, max_length: int, *, field: str) -> str:
    """An http(s) URL as text, or "" (dropped) when it is something else or too long (a cut
    URL is a broken URL)."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        _count(field, "dropped")
        return ""
    value = _storable(value.strip())
    if len(value) > max_length or not value.lower().startswith(("http://", "https://")):
        _count(field, "dropped")
        return ""
    return value


def ident(value: Any, max_length: int, *, field: str) -> str:
    """An id (wxid, chatroom id, platform message id) as text, or "" when it cannot be one:
    not text/integer, empty, containing whitespace or control characters, or too long (a cut
    id would name someone else)."""
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int):
        _count(field, "dropped")
        return ""
    value = str(value).strip()
    if (
        not value
        or len(value) > max_length
        or any(c.isspace() or ord(c) < 32 for c in value)
        or _SURROGATE.search(value)
    ):
        _count(field, "dropped")
        return ""
    return value


def small_int(value: Any, *, field: str, low: int = 0, high: int = 32767) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value.strip())
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or not low <= value <= high:
        _count(field, "dropped")
        return None
    return value


def enum(value: Any, choices: Iterable[str], default: str, *, field: str) -> str:
    if value in (None, ""):
        return default
    value = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else None
    if value not in set(choices):
        _count(field, "dropped")
        return default
    return value


# 2000-01-01 .. 2100-01-01: anything outside is not a WeChat timestamp.
_MIN_TS, _MAX_TS = 946684800, 4102444800


def timestamp(value: Any, *, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int | float):
        _count(field, "dropped")
        return None
    if isinstance(value, float) and not math.isfinite(value):
        _count(field, "dropped")
        return None
    if value > _MAX_TS * 1000 or value < 0:
        _count(field, "dropped")
        return None
    if value > _MAX_TS:  # milliseconds
        value = value / 1000
    if not _MIN_TS <= value <= _MAX_TS:
        _count(field, "dropped")
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def id_list(values: Any, max_length: int, *, field: str) -> list[str]:
    """A list of ids (e.g. label ids) with the unusable ones dropped."""
    if values is None or values == "":
        return []
    if isinstance(values, str):
        values = values.split(",")
    if not isinstance(values, list | tuple):
        _count(field, "dropped")
        return []
    out = []
    for value in values:
        cleaned = ident(value, max_length, field=field)
        if cleaned:
            out.append(cleaned)
    return out
