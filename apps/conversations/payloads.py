"""The JSON shapes of conversations and messages in WebSocket events (``new_message``,
``session_joined``, ``sync`` ...). Services that push use these so every event agrees."""

from __future__ import annotations

from typing import Any

from apps.conversations.media import media_payload
from apps.conversations.models import Conversation, Message


def conversation_payload(conversation: Conversation) -> dict[str, Any]:
    return {
        "id": conversation.id,
        "status": conversation.status,
        "mode": conversation.mode,
        "assignee_id": conversation.assignee_id,
        "unread_count": conversation.unread_count,
        "last_message_at": conversation.last_message_at,
        "handoff_reason": conversation.handoff_reason,
        "handed_off_at": conversation.handed_off_at,
        "ai_paused_until": conversation.ai_paused_until,
        "snooze_until": conversation.snooze_until,
        # ai (issue 17): auto / draft / off override ("" = the account's mode).
        "reply_mode": conversation.reply_mode,
        "updated_at": conversation.updated_at,
    }


def message_payload(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "direction": message.direction,
        "sender_kind": message.sender_kind,
        "kind": message.kind,
        "text": message.text,
        "status": message.status,
        "error": message.error,
        "media_url": message.media_url,
        # media (apps.conversations.media): the stored file and its fetch status, or None.
        "media": media_payload(message),
        "sender_name": message.sender_name,
        "sender_wxid": message.sender_wxid,
        "sender_user_id": message.sender_user_id,
        # ai (issue 17): the app that answered (replies); intent / sentiment (customer messages).
        "ai_app_id": message.ai_app_id,
        "intent": message.intent,
        "sentiment": message.sentiment,
        "sentiment_score": message.sentiment_score,
        "created_at": message.created_at,
        "updated_at": message.updated_at,
    }
