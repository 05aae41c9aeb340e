"""Names of group members and groups, looked up at the platform on first sight and cached.

Neither platform's group message carries the sender's name (GeWe sends ``wxid:\\n`` before the
text, E云管家 a ``fromUser`` wxid). The AI turn calls ``member_display_name`` before it answers
a group member: the stored ``GroupMember`` row answers at once; an unknown member triggers one
member-list lookup of the group (GeWe ``/group/getChatroomMemberList``, E云管家
``/getChatRoomMember``), at most once per ``CONVERSATION_GROUP_NAMES_REFRESH_SECONDS`` per group
(a Redis flag shared by all workers), and the group's own name comes from the contact details
(GeWe ``/contacts/getDetailInfo``, E云管家 ``/getContact``). A lookup failure is logged and the
answer still goes out (with the wxid), never blocked.
"""

from __future__ import annotations

import logging

from django.conf import settings

from apps.conversations.models import Message
from apps.core.redis import get_redis, redis_key

logger = logging.getLogger(__name__)


def _member_name(group, member_wxid: str) -> str:
    from apps.wechat_accounts.models import GroupMember

    row = (
        GroupMember.objects.filter(org_id=group.org_id, group=group, member_wxid=member_wxid)
        .only("display_name", "nickname")
        .first()
    )
    if row is None:
        return ""
    return row.display_name or row.nickname or ""


def _claim_lookup(group) -> bool:
    """True for the one worker that may ask the platform about this group now."""
    try:
        return bool(
            get_redis().set(
                redis_key("conversations", "group-names", group.pk),
                "1",
                nx=True,
                ex=max(1, settings.CONVERSATION_GROUP_NAMES_REFRESH_SECONDS),
            )
        )
    except Exception:  # noqa: BLE001 - without Redis, look up (rare) rather than never
        return True


def _lookup(conversation) -> None:
    from apps.wechat_accounts import services as wechat

    group = conversation.contact
    account = conversation.account
    try:
        wechat.group_members_sync(org_id=conversation.org_id, group=group)
    except Exception as exc:  # noqa: BLE001 - names are cosmetic; the answer goes out anyway
        logger.warning("group names: member list of %s failed: %s", group.pk, exc)
    if group.nickname:
        return
    try:
        from apps.integrations.services import wechat_client_for

        client = wechat_client_for(account.connection, wechat_account_id=account.pk)
        details = client.get_contacts_detail(account.device_id, [group.wxid])
        nickname = next((d.nickname for d in details if d.wxid == group.wxid and d.nickname), "")
        if nickname:
            wechat.contact_upsert(
                org=conversation.org_id, account=account, wxid=group.wxid, nickname=nickname[:200]
            )
            group.nickname = nickname[:200]
    except Exception as exc:  # noqa: BLE001
        logger.warning("group names: group name of %s failed: %s", group.pk, exc)


def member_display_name(conversation, member_wxid: str, messages: list[Message]) -> str:
    """The member's name in the group (looked up on first sight); stored on ``messages`` that
    lack it. Returns "" when no name is known (callers fall back to the wxid)."""
    if not member_wxid or conversation.contact is None:
        return ""
    # A name the platform sent with the message (GeWe's PushContent) counts unless it is only
    # the wxid again.
    name = next(
        (m.sender_name for m in messages if m.sender_name and m.sender_name != member_wxid), ""
    )
    if not name:
        name = _member_name(conversation.contact, member_wxid)
    if not name and _claim_lookup(conversation.contact):
        _lookup(conversation)
        name = _member_name(conversation.contact, member_wxid)
    if name:
        missing = [m.pk for m in messages if m.sender_name in ("", member_wxid)]
        if missing:
            Message.objects.filter(org_id=conversation.org_id, pk__in=missing).update(
                sender_name=name[:200]
            )
            for message in messages:
                if message.sender_name in ("", member_wxid):
                    message.sender_name = name[:200]
    return name
