"""The AI settings of an organisation the AI turn reads (issue 17), typed, with defaults.

Stored in ``Organization.settings``; a missing or invalid value reads as the default, so a
hand-edited JSON never breaks a turn:

- ``ai_analysis_mode``: ``off`` / ``intent`` / ``intent_sentiment`` (older values: the boolean
  ``ai_analysis`` and ``record``/``handoff`` read as ``intent_sentiment``);
- ``ai_negative_handoff_threshold``: 0-100; a sentiment score at or below minus this percentage
  hands the conversation to a person (0: never). Default from
  ``CONVERSATION_HANDOFF_SENTIMENT_SCORE`` (-0.7 -> 70);
- ``ai_draft_expiry_minutes``: a pending draft expires after this long (default 120);
- ``ai_auto_resolve_idle_days``: open conversations without any message for this many days are
  resolved with a system note (default 7, 0: never);
- ``ai_session_idle_minutes`` / ``ai_session_expire_minutes``: the provider session's
  active -> idle -> expired steps (default 30 / 1440);
- ``ai_group_session_idle_minutes``: a group member's provider session restarts after this idle
  time (seed 004's per-hour key; default 60).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

ANALYSIS_OFF = "off"
ANALYSIS_INTENT = "intent"
ANALYSIS_INTENT_SENTIMENT = "intent_sentiment"
ANALYSIS_MODES = (ANALYSIS_OFF, ANALYSIS_INTENT, ANALYSIS_INTENT_SENTIMENT)


def _raw(org) -> dict[str, Any]:
    value = getattr(org, "settings", None)
    return value if isinstance(value, dict) else {}


def _int(org, key: str, default: int, low: int, high: int) -> int:
    value = _raw(org).get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        return default
    return value


def analysis_mode(org) -> str:
    data = _raw(org)
    value = data.get("ai_analysis_mode")
    if value in ANALYSIS_MODES:
        return value
    if value in ("record", "handoff"):
        return ANALYSIS_INTENT_SENTIMENT
    legacy = data.get("ai_analysis")
    if isinstance(legacy, bool):
        return ANALYSIS_INTENT_SENTIMENT if legacy else ANALYSIS_OFF
    return ANALYSIS_INTENT_SENTIMENT if settings.CONVERSATION_AI_ANALYSIS_ENABLED else ANALYSIS_OFF


def negative_handoff_threshold(org) -> float | None:
    """The score (-1..0) at or below which a chat is handed off, or None (never)."""
    default = round(-settings.CONVERSATION_HANDOFF_SENTIMENT_SCORE * 100)
    if _raw(org).get("ai_analysis_mode") == "record":
        return None  # the older "record only" choice
    percent = _int(org, "ai_negative_handoff_threshold", default, 0, 100)
    return None if percent == 0 else -percent / 100


def draft_expiry_minutes(org) -> int:
    return _int(
        org, "ai_draft_expiry_minutes", settings.CONVERSATION_DRAFT_EXPIRY_MINUTES, 1, 7 * 24 * 60
    )


def auto_resolve_idle_days(org) -> int:
    return _int(
        org, "ai_auto_resolve_idle_days", settings.CONVERSATION_AUTO_RESOLVE_IDLE_DAYS, 0, 365
    )


def session_idle_seconds(org) -> int:
    default = settings.CONVERSATION_AI_SESSION_IDLE_SECONDS // 60
    return _int(org, "ai_session_idle_minutes", default, 1, 7 * 24 * 60) * 60


def session_expire_seconds(org) -> int:
    default = settings.CONVERSATION_AI_SESSION_EXPIRE_SECONDS // 60
    return _int(org, "ai_session_expire_minutes", default, 1, 30 * 24 * 60) * 60


def group_session_idle_seconds(org) -> int:
    default = settings.CONVERSATION_GROUP_SESSION_IDLE_SECONDS // 60
    return _int(org, "ai_group_session_idle_minutes", default, 1, 7 * 24 * 60) * 60
