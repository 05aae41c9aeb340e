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


TRUNCATION_MARK = "…"


def cap_chunks(chunks: list[str], *, max_chunks: int, limit: int) -> list[str]:
    """At most ``max_chunks`` WeChat messages per answer (one answer once went out as 40, an
    echo as 1,506); the last one kept ends with "…" when the rest is dropped."""
    max_chunks = max(1, int(max_chunks))
    if len(chunks) <= max_chunks:
        return chunks
    kept = chunks[:max_chunks]
    last = kept[-1]
    if len(last) + len(TRUNCATION_MARK) > limit:
        last = last[: max(0, limit - len(TRUNCATION_MARK))]
    kept[-1] = last.rstrip() + TRUNCATION_MARK
    return kept


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
    touch_conversation: bool = True,
) -> list[Message]:
    """Queue ``text`` to the conversation's contact (call inside a transaction holding the
    conversation's row lock). ``message_fields`` go on the first message (AI usage), inserted
    with it. ``touch_conversation=False``: the caller saves the conversation's new
    ``last_message_at`` (set on ``conversation``) with its own update."""
    from apps.conversations.ai import split_reply
    from apps.conversations.outbound import send
    from apps.conversations.services import push_new_message

    chunks = cap_chunks(
        split_reply(text, settings.CONVERSATION_REPLY_CHUNK_CHARS),
        max_chunks=settings.CONVERSATION_REPLY_MAX_CHUNKS,
        limit=settings.CONVERSATION_REPLY_CHUNK_CHARS,
    )
    at_wxids = None
    is_group = conversation.contact.kind == "group"
    if is_group and mention_wxid:
        at_wxids = [mention_wxid]
        chunks[0] = mention_prefix(mention_name or mention_wxid) + chunks[0]
    messages = []
    for index, chunk in enumerate(chunks):
        fields = {}
        if ai_app is not None:
            fields["ai_app"] = ai_app
        if index == 0 and message_fields:
            fields.update(message_fields)
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
            message_fields=fields,
            touch_conversation=touch_conversation,
            push_queued=False,  # new_message below carries the queued message
        )
        push_new_message(message, conversation)
        messages.append(message)
    return messages
