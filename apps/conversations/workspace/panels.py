"""Sections other apps add to the workspace's customer pane, without the conversations app
importing them (higher layers register here at startup, e.g. SOP enrolments).

    from apps.conversations.workspace import panels
    panels.register_customer_section("sop", lambda *, org, contact: [...])

A section function takes ``org`` and ``contact`` (may be None), returns JSON-safe data (or None
to leave the section out), and must make a bounded number of queries.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_sections: dict[str, Callable[..., Any]] = {}


def register_customer_section(name: str, fn: Callable[..., Any]) -> None:
    _sections[name] = fn


def customer_sections(*, org, contact) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, fn in _sections.items():
        try:
            value = fn(org=org, contact=contact)
        except Exception:  # noqa: BLE001 - one broken section must not break the pane.
            logger.exception("Customer pane section %s failed", name)
            continue
        if value is not None:
            out[name] = value
    return out
