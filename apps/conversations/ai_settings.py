"""The AI settings of an organisation the AI turn reads (issue 17), typed, with defaults.

Declared in ``apps.orgs.org_settings`` (the console's settings form) and read through its
``org_setting``: a missing or invalid value reads as the default, so a hand-edited JSON never
breaks a turn:

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

from apps.orgs.org_settings import org_setting

ANALYSIS_OFF = "off"
ANALYSIS_INTENT = "intent"
ANALYSIS_INTENT_SENTIMENT = "intent_sentiment"
ANALYSIS_MODES = (ANALYSIS_OFF, ANALYSIS_INTENT, ANALYSIS_INTENT_SENTIMENT)


def _setting(org, key: str):
    return org_setting(org, key)


def analysis_mode(org) -> str:
    value = _setting(org, "ai_analysis_mode")
    return value if value in ANALYSIS_MODES else ANALYSIS_OFF


def negative_handoff_threshold(org) -> float | None:
    """The score (-1..0) at or below which a chat is handed off, or None (never)."""
    percent = _setting(org, "ai_negative_handoff_threshold")
    return None if not percent else -percent / 100


def draft_expiry_minutes(org) -> int:
    return _setting(org, "ai_draft_expiry_minutes")


def auto_resolve_idle_days(org) -> int:
    return _setting(org, "ai_auto_resolve_idle_days")


def session_idle_seconds(org) -> int:
    return _setting(org, "ai_session_idle_minutes") * 60


def session_expire_seconds(org) -> int:
    return _setting(org, "ai_session_expire_minutes") * 60


def group_session_idle_seconds(org) -> int:
    return _setting(org, "ai_group_session_idle_minutes") * 60
