"""Queue one answer (an AI reply or a sent draft) as WeChat-sized messages, in order.

In groups the first message @-mentions the asker by display name (``@name\\u2005``, the
platforms' mention format, plus the wxid in ``at_wxids``); a raw wxid is shown only when no
name is known. Idempotency keys ``<key_prefix>:<n>`` make a second queueing of the same answer
impossible.
"""

from __future__ import annotations

from django.conf import settings

from apps.conversations.models import Conversation, Message


def mention_prefix(name: str) -> str:
    return f"@{name}\u2005"


def send_reply(
    *,
    conversation: Conversation,
    text: str,
    key_prefix: str,
    sender_kind: str,
    sender_user=None,
    mention_wxid: str = "",
    mention_name: str = "",
    ai_app=None,
    message_fields: dict | None = None,
) -> list[Message]:
    """Queue ``text`` to the conversation's contact (call inside a transaction holding the
    conversation's row lock). ``message_fields`` go on the first message (AI usage)."""
    from apps.conversations.ai import split_reply
    from apps.conversations.services import push_new_message
    from apps.wechat_accounts.services import send

    chunks = split_reply(text, settings.CONVERSATION_REPLY_CHUNK_CHARS)
    at_wxids = None
    is_group = conversation.contact.kind == "group"
    if is_group and mention_wxid:
        at_wxids = [mention_wxid]
        chunks[0] = mention_prefix(mention_name or mention_wxid) + chunks[0]
    messages = []
    for index, chunk in enumerate(chunks):
        message = send(
            org=conversation.org,
            account=conversation.account,
            to_wxid=conversation.contact.wxid,
            text=chunk,
            sender_kind=sender_kind,
            sender_user=sender_user,
            urgent=True,
            client_msg_id=f"{key_prefix}:{index}",
            conversation=conversation,
            at_wxids=at_wxids if index == 0 else None,
        )
        fields = {}
        if ai_app is not None:
            fields["ai_app"] = ai_app
        if index == 0 and message_fields:
            fields.update(message_fields)
        if fields:
            Message.objects.filter(pk=message.pk).update(**fields)
            for name, value in fields.items():
                setattr(message, name, value)
        push_new_message(message, conversation)
        messages.append(message)
    return messages
