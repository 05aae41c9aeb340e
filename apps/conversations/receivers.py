"""Receivers of the conversations app (connected in ``apps.ConversationsConfig.ready``)."""

from __future__ import annotations

import logging

from django.db import transaction

from apps.conversations.outbound import outbound_kick_account, send
from apps.core import events
from apps.wechat_accounts.models import WeChatAccount

logger = logging.getLogger(__name__)

# Handoffs that are not announced to the customer: a person is already writing.
_SILENT_REASONS = {"agent", "phone_reply"}


def send_handoff_acknowledgement(sender, *, org_id, conversation_id, reason="", **_kwargs) -> None:
    """When the organisation has it on, tell the customer a person is coming (through the
    normal outbound pipeline, once per handoff)."""
    from apps.conversations.models import Conversation
    from apps.conversations.org_prefs import handoff_ack
    from apps.conversations.services import push_new_message

    if reason in _SILENT_REASONS:
        return
    try:
        conversation = (
            Conversation.objects.select_related("org", "account", "contact")
            .filter(org_id=org_id, pk=conversation_id)
            .first()
        )
        if conversation is None or conversation.account is None or conversation.contact is None:
            return
        text = handoff_ack(conversation.org)
        if not text:
            return
        stamp = int(conversation.handed_off_at.timestamp()) if conversation.handed_off_at else 0
        with transaction.atomic():
            message = send(
                org=conversation.org,
                account=conversation.account,
                to_wxid=conversation.contact.wxid,
                text=text,
                sender_kind="system",
                urgent=True,
                client_msg_id=f"handoff-ack:{conversation.pk}:{stamp}",
                conversation=conversation,
            )
            push_new_message(message, conversation)
    except Exception:  # noqa: BLE001 - an acknowledgement must never break the handoff.
        logger.exception("Handoff acknowledgement of conversation %s failed", conversation_id)


def kick_outbound_when_online(sender, *, org_id, account_id, to_status, **_kwargs) -> None:
    """An account that comes (back) online sends the messages that waited for it."""
    if to_status == WeChatAccount.Status.ONLINE:
        outbound_kick_account(org_id=org_id, account_id=account_id)


def send_welcome_message(sender, *, org_id, account_id, request_id, wxid, **_kwargs) -> None:
    """The account's welcome message to a friend whose request was accepted (once per request:
    the idempotency key is the request id)."""
    account = WeChatAccount.objects.select_related("org").filter(org_id=org_id, pk=account_id)
    account = account.first()
    if account is None or not account.welcome_message or not wxid:
        return
    send(
        org=account.org,
        account=account,
        to_wxid=wxid,
        kind="text",
        text=account.welcome_message,
        client_msg_id=f"welcome-{request_id}",
    )


def connect() -> None:
    events.conversation_handed_off.connect(
        send_handoff_acknowledgement, dispatch_uid="conversations-handoff-ack"
    )
    events.account_status_changed.connect(
        kick_outbound_when_online, dispatch_uid="conversations-outbound-kick"
    )
    events.friend_request_accepted.connect(
        send_welcome_message, dispatch_uid="conversations-welcome-message"
    )
