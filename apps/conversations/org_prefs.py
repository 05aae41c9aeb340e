"""The conversations app's organisation settings, read with their defaults.

Declared (typed, with defaults and the console's form) in ``apps.orgs.org_settings``:

- ``conversation_visibility``: ``all`` (agents see every conversation, the default) or
  ``assigned`` (agents see those assigned to them plus unassigned ones; managers and above
  always see all);
- ``ai_auto_return_minutes``: after an agent takes a conversation over by replying, the AI
  takes it back after this many minutes of no agent message (0 = never, the default);
- ``handoff_ack_enabled`` / ``handoff_ack_text``: an acknowledgement sent to the customer when
  a conversation is handed to a person (default off; default text "已为您转接人工客服，请稍候").
"""

from __future__ import annotations

from apps.orgs.models import Membership, Organization, Role, role_at_least
from apps.orgs.org_settings import HANDOFF_ACK_DEFAULT, org_setting

VISIBILITY_ALL = "all"
VISIBILITY_ASSIGNED = "assigned"
DEFAULT_HANDOFF_ACK_TEXT = HANDOFF_ACK_DEFAULT


def visibility(org: Organization) -> str:
    return org_setting(org, "conversation_visibility")


def auto_return_minutes(org: Organization) -> int:
    return int(org_setting(org, "ai_auto_return_minutes") or 0)


def handoff_ack(org: Organization) -> str:
    """The acknowledgement text to send on handoff, or "" when the organisation has it off."""
    if not org_setting(org, "handoff_ack_enabled"):
        return ""
    text = org_setting(org, "handoff_ack_text")
    return text.strip() if isinstance(text, str) and text.strip() else DEFAULT_HANDOFF_ACK_TEXT


def sees_all(*, org: Organization, user=None, role: str | None = None) -> bool:
    """Whether this member sees every conversation of ``org`` (no user: system code, yes)."""
    if user is None or visibility(org) == VISIBILITY_ALL:
        return True
    if role is None:
        role = Membership.objects.filter(org=org, user=user).values_list("role", flat=True).first()
    return bool(role) and role_at_least(role, Role.MANAGER)
