"""Reads of the conversations app, always scoped to one organisation."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Q, QuerySet

from apps.conversations.models import Conversation, Message
from apps.orgs.models import Organization


def conversation_list(*, org: Organization, user=None) -> QuerySet[Conversation]:
    """The conversations of ``org`` the user may see (today: all of the organisation's)."""
    return Conversation.objects.filter(org=org)


def conversation_get_for_ws(*, org: Organization, conversation_id: object) -> Conversation | None:
    """The conversation a socket asks for, or None when it is missing, of another organisation,
    or the id is not a positive integer (the consumer answers all three the same way)."""
    try:
        conversation_id = int(conversation_id)
    except (TypeError, ValueError):
        return None
    if conversation_id <= 0:
        return None
    return Conversation.objects.filter(org=org, id=conversation_id).first()


def message_list_changed_since(
    *,
    org: Organization,
    since: datetime | None = None,
    after_id: int | None = None,
    conversation_id: int | None = None,
    limit: int = 500,
) -> list[Message]:
    """Messages created or changed after ``since`` (or with an id above ``after_id``), oldest
    change first: what a reconnecting client missed. The database is the truth, pushes are hints.

    Returns at most ``limit + 1`` rows so the caller can tell whether more remain.
    """
    queryset = Message.objects.filter(org=org)
    if conversation_id is not None:
        queryset = queryset.filter(conversation_id=conversation_id)
    if since is not None:
        queryset = queryset.filter(Q(updated_at__gt=since) | Q(created_at__gt=since))
        order = ["updated_at", "id"]
    else:
        queryset = queryset.filter(id__gt=after_id or 0)
        order = ["id"]
    return list(queryset.order_by(*order)[: limit + 1])
