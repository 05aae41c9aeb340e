"""Writes of the conversations app."""

from __future__ import annotations

from django.db import transaction
from django.utils.translation import gettext as _

from apps.conversations.models import Conversation
from apps.core import realtime
from apps.core.exceptions import NotFoundError
from apps.orgs.models import Organization


@transaction.atomic
def conversation_mark_read(*, org: Organization, conversation_id: int, user) -> Conversation:
    """Reset the unread counter and tell every watcher (``conversation_read``) after commit."""
    conversation = (
        Conversation.objects.select_for_update().filter(org=org, id=conversation_id).first()
    )
    if conversation is None:
        raise NotFoundError(_("Conversation not found."))
    if conversation.unread_count:
        conversation.unread_count = 0
        conversation.full_clean()
        conversation.save(update_fields=["unread_count", "updated_at"])
    realtime.push_on_commit(
        "conversation_read",
        {"conversation_id": conversation.id, "unread_count": 0, "read_by": user.id},
        groups=[
            realtime.group_for_conversations(org.id),
            realtime.group_for_conversation(org.id, conversation.id),
        ],
    )
    return conversation
