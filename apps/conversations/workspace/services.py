"""Writes the workspace adds: private notes and resending a failed message.

Pushes (after commit): ``note_created`` to the conversation's group and the inbox group (the
team sees it live; never sent to WeChat); a resend is an agent reply (``new_message``).
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext as _

from apps.conversations import selectors, services
from apps.conversations.models import ConversationNote, Message
from apps.core import realtime
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.orgs.models import Organization


def note_payload(note: ConversationNote) -> dict:
    author = note.author
    return {
        "id": note.id,
        "conversation_id": note.conversation_id,
        "text": note.text,
        "author_id": note.author_id,
        "author_name": (author.get_full_name() or author.email) if author else "",
        "created_at": note.created_at,
    }


@transaction.atomic
def note_create(
    *, org: Organization, conversation_id: int, user, text: str, role: str | None = None
) -> ConversationNote:
    """A private note on a conversation the member may see (visible to the team only)."""
    conversation = selectors.conversation_list(org=org, user=user, role=role).filter(
        pk=conversation_id
    )
    conversation = conversation.first()
    if conversation is None:
        raise NotFoundError(_("Conversation not found."))
    note = ConversationNote(org=org, conversation=conversation, author=user, text=text.strip())
    try:
        note.full_clean(exclude=["org", "conversation", "author"])
    except ValidationError as exc:
        raise ApplicationError(_("Invalid data."), fields=exc.message_dict) from exc
    note.save()
    realtime.push_on_commit(
        "note_created",
        {"note": note_payload(note)},
        groups=[
            realtime.group_for_conversation(org.id, conversation.id),
            realtime.group_for_conversations(org.id),
        ],
    )
    return note


def message_resend(*, org: Organization, message_id: int, user, role: str | None = None) -> Message:
    """Send a failed outbound message again as a new agent message (the failed row stays as the
    record). Resending the same failed message twice returns the first resend."""
    message = (
        Message.objects.filter(org=org, pk=message_id, direction=Message.Direction.OUTBOUND)
        .select_related("conversation")
        .first()
    )
    if message is None or not selectors.conversation_visible(
        org=org, user=user, role=role, conversation=message.conversation
    ):
        raise NotFoundError(_("Message not found."))
    if message.status != Message.Status.FAILED:
        raise ConflictError(_("Only a failed message can be sent again."))
    payload = message.payload or {}
    return services.agent_reply(
        org=org,
        conversation_id=message.conversation_id,
        user=user,
        text=message.text,
        kind=message.kind,
        url=message.media_url,
        file_name=payload.get("file_name", ""),
        title=payload.get("title", ""),
        client_msg_id=f"resend:{message.pk}",
    )
