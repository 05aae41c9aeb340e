"""The periodic lifecycle of conversations (beat ``conversations-lifecycle``, every minute).

Per organisation (each step idempotent, safe to run twice or late):

- AI sessions move active -> idle -> expired (``sessions.sessions_lifecycle_org``); an expired
  session starts a new provider session on the next turn;
- pending drafts past their expiry become ``expired`` (``drafts.drafts_expire``);
- open / pending conversations with no message for the organisation's
  ``ai_auto_resolve_idle_days`` (default 7; 0 = never) are resolved, with a system note in the
  thread ("Resolved automatically after N days without messages") and a
  ``conversation_updated`` push. A customer message reopens them as usual.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations import ai_settings, sessions
from apps.conversations.models import Conversation, Message
from apps.orgs.models import Organization

logger = logging.getLogger(__name__)


def _auto_resolve_note(days: int) -> str:
    return _("Resolved automatically after %(days)d days without messages.") % {"days": days}


def conversations_auto_resolve(*, org: Organization, now: datetime | None = None, limit=500) -> int:
    """Resolve the organisation's idle open conversations (see the module docstring)."""
    from apps.conversations.services import (
        conversation_locked,
        push_conversation_updated,
        push_new_message,
    )

    days = ai_settings.auto_resolve_idle_days(org)
    if days <= 0:
        return 0
    now = now or timezone.now()
    cutoff = now - timedelta(days=days)
    due = list(
        Conversation.objects.filter(
            org=org, status__in=[Conversation.Status.OPEN, Conversation.Status.PENDING]
        )
        .filter(
            Q(last_message_at__lte=cutoff) | Q(last_message_at__isnull=True, created_at__lte=cutoff)
        )
        .values_list("id", flat=True)[:limit]
    )
    resolved = 0
    for conversation_id in due:
        with transaction.atomic():
            conversation = conversation_locked(org, conversation_id)
            last = conversation.last_message_at or conversation.created_at
            if (
                conversation.status
                not in (
                    Conversation.Status.OPEN,
                    Conversation.Status.PENDING,
                )
                or last > cutoff
            ):
                continue  # a message arrived meanwhile
            text = _auto_resolve_note(days)
            note = Message(
                org_id=org.pk,
                conversation=conversation,
                account=conversation.account,
                direction=Message.Direction.INBOUND,
                sender_kind=Message.SenderKind.SYSTEM,
                kind=Message.Kind.SYSTEM,
                text=text,
                status=Message.Status.RECEIVED,
                payload={"auto_resolved": True, "idle_days": days},
            )
            note.save(force_insert=True)
            conversation.status = Conversation.Status.RESOLVED
            conversation.resolved_at = now
            conversation.snooze_until = None
            conversation.save(update_fields=["status", "resolved_at", "snooze_until", "updated_at"])
            push_new_message(note, conversation)
            push_conversation_updated(conversation)
            resolved += 1
    return resolved


def conversations_lifecycle_org(*, org: Organization, now: datetime | None = None) -> dict:
    now = now or timezone.now()
    result = sessions.sessions_lifecycle_org(org=org, now=now)
    result["resolved"] = conversations_auto_resolve(org=org, now=now)
    return result


def conversations_lifecycle_all_orgs(*, now: datetime | None = None) -> dict:
    """The beat task's body: every organisation, then the drafts of all of them."""
    from apps.conversations.drafts import drafts_expire

    now = now or timezone.now()
    totals = {"idle": 0, "expired": 0, "resolved": 0}
    for org in Organization.objects.all().iterator():
        try:
            result = conversations_lifecycle_org(org=org, now=now)
        except Exception:  # noqa: BLE001 - one organisation's failure never stops the others
            logger.exception("lifecycle: organisation %s failed", org.pk)
            continue
        for key in totals:
            totals[key] += result.get(key, 0)
    totals["drafts_expired"] = drafts_expire(now=now)
    return totals
