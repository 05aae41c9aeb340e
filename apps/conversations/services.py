"""Writes of the conversations app: inbound messages, handoff, assignment, status, labels, agent
replies and canned replies. The AI turn lives in ``ai.py``.

Functions other apps call:

- ``inbound_message_record(*, org, account, inbound) -> InboundResult`` (the webhook worker)
- ``conversation_handoff(*, org, conversation_id, mode, reason, user=None)``
- ``conversation_mark_read(*, org, conversation_id, user)`` (the chat consumers)

Pushes (after commit): ``new_message`` and ``conversation_updated`` to the conversation's group
and the organisation's inbox group; ``conversation_read``. The signal
``apps.core.events.conversation_handed_off`` is sent after commit on every handoff to a person.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from apps.conversations import outbound, payloads
from apps.conversations.models import CannedReply, Conversation, Label, Message
from apps.conversations.org_prefs import auto_return_minutes
from apps.core import events, realtime
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.core.templating import render_template as core_render_template
from apps.integrations import platform_data as pd
from apps.orgs.models import Organization
from apps.orgs.selectors import membership_exists
from apps.wechat_accounts import services as wechat
from apps.wechat_accounts.models import Contact, ReplyPolicy

if TYPE_CHECKING:
    from apps.integrations.webhooks import InboundMessage
    from apps.wechat_accounts.models import WeChatAccount

logger = logging.getLogger(__name__)


class HandoffReason(models.TextChoices):
    """Why a conversation went to a person (``Conversation.handoff_reason``); people read the
    label, never the code."""

    KEYWORD = "keyword", gettext_lazy("The customer asked for a person")
    SENTIMENT = "sentiment", gettext_lazy("Negative sentiment")
    AI_FAILED = "ai_failed", gettext_lazy("The AI failed")
    BUDGET = "budget", gettext_lazy("The budget is used up")
    PHONE_REPLY = "phone_reply", gettext_lazy("Answered from the phone")
    NO_AI_APP = "no_ai_app", gettext_lazy("No AI app is set up")
    AGENT = "agent", gettext_lazy("Taken over by an agent")


def _groups(conversation: Conversation) -> list[str]:
    return [
        realtime.group_for_conversation(conversation.org_id, conversation.pk),
        realtime.group_for_conversations(conversation.org_id),
    ]


def push_conversation_updated(conversation: Conversation) -> None:
    realtime.push_on_commit(
        "conversation_updated",
        {"conversation": payloads.conversation_payload(conversation)},
        groups=_groups(conversation),
    )


def push_new_message(message: Message, conversation: Conversation) -> None:
    realtime.push_on_commit(
        "new_message",
        {
            "message": payloads.message_payload(message),
            "conversation": payloads.conversation_payload(conversation),
        },
        groups=_groups(conversation),
    )


def _save(obj, update_fields: list[str]) -> None:
    try:
        obj.full_clean(validate_constraints=False)
    except ValidationError as exc:
        fields = getattr(exc, "message_dict", None) or {"non_field_errors": exc.messages}
        raise ApplicationError(_("Invalid data."), fields=fields) from exc
    obj.save(update_fields=[*update_fields, "updated_at"])


def conversation_locked(org: Organization | int, conversation_id: int) -> Conversation:
    org_id = getattr(org, "pk", org)
    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("account", "contact")
        .filter(org_id=org_id, pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise NotFoundError(_("Conversation not found."))
    return conversation


# -- inbound -------------------------------------------------------------------------------


@dataclass(frozen=True)
class InboundResult:
    status: str  # "processed" or "ignored" (the webhook event's status)
    reason: str = ""
    message: Message | None = None


def handoff_keywords(org: Organization) -> list[str]:
    extra = (getattr(org, "settings", None) or {}).get("handoff_keywords") or []
    return [
        k for k in [*settings.CONVERSATION_HANDOFF_KEYWORDS, *extra] if isinstance(k, str) and k
    ]


def _policy_allows(policy: str, *, text: str, mentioned: bool, keywords: list[str]) -> bool:
    if policy == ReplyPolicy.ALL:
        return True
    if policy == ReplyPolicy.MENTION:
        return mentioned
    if policy == ReplyPolicy.KEYWORDS:
        return any(k and k in text for k in keywords)
    return False


def reply_policy_allows(
    account: WeChatAccount, message: Message, *, is_group: bool, contact=None
) -> bool:
    """The account's reply policy for this customer message (private chats: the private
    policy, where "mention" means every message; groups: off / @ / keywords / all, the
    group's own ``reply_policy`` when set)."""
    keywords = [k for k in (account.reply_keywords or []) if isinstance(k, str)]
    if is_group:
        return _policy_allows(
            getattr(contact, "reply_policy", "") or account.group_reply_policy,
            text=message.text,
            mentioned=message.mentions_account,
            keywords=keywords,
        )
    return _policy_allows(
        account.private_reply_policy, text=message.text, mentioned=True, keywords=keywords
    )


def conversation_ai_resume_due(conversation: Conversation, now: datetime) -> bool:
    """A phone reply (or an agent's takeover, when the organisation set an auto-return time)
    paused the AI; once the pause is over the AI takes the chat back."""
    if (
        conversation.mode == Conversation.Mode.HUMAN
        and conversation.handoff_reason in (HandoffReason.PHONE_REPLY, HandoffReason.AGENT)
        and conversation.ai_paused_until is not None
        and conversation.ai_paused_until <= now
    ):
        conversation.mode = Conversation.Mode.AI
        conversation.ai_paused_until = None
        conversation.handoff_reason = ""
        return True
    return False


def _is_echo_of_our_send(account: WeChatAccount, inbound: InboundMessage) -> bool:
    """An own-message callback of something we sent through the pipeline (not from the phone).

    Matched by the platform id once the send stored it; before that (the echo can overtake the
    send's answer) by an unconfirmed outbound message with the same text to the same chat.
    """
    if (
        inbound.platform_msg_id
        and Message.objects.filter(
            account=account, platform_msg_id=inbound.platform_msg_id
        ).exists()
    ):
        return True
    recent = timezone.now() - timedelta(minutes=10)
    return (
        Message.objects.filter(
            account=account,
            to_wxid=inbound.chat_wxid,
            direction=Message.Direction.OUTBOUND,
            status__in=[Message.Status.QUEUED, Message.Status.SENDING],
            created_at__gte=recent,
            text=inbound.text,
        )
        .exclude(sender_kind=Message.SenderKind.PHONE)
        .exists()
    )


def inbound_message_record(
    *, org: Organization, account: WeChatAccount, inbound: InboundMessage
) -> InboundResult:
    """Record one parsed chat message (inside the webhook worker's transaction).

    Customer messages: contact upsert, the conversation (reopened if resolved/snoozed, unread +1),
    the message (unique platform id per account: a duplicate is ignored), a handoff on a
    handoff keyword, and an AI turn scheduled after commit when the conversation is in AI mode
    and the reply policy allows. Own messages: the echo of our own send is ignored; a message
    the salesperson typed on the phone is recorded as outbound ``phone`` and pauses the AI.
    """
    from apps.conversations import media as conversation_media

    if inbound.self_sent and _is_echo_of_our_send(account, inbound):
        return InboundResult("ignored", "echo of a message we sent")
    now = timezone.now()
    contact = wechat.contact_upsert(
        org=org,
        account=account,
        wxid=inbound.chat_wxid,
        kind=Contact.Kind.GROUP if inbound.is_group else None,
    )
    conversation = outbound.conversation_for_locked(org=org, account=account, contact=contact)
    kind = inbound.kind if inbound.kind in Message.Kind.values else Message.Kind.OTHER
    is_system = kind == Message.Kind.SYSTEM
    if inbound.self_sent:
        direction, sender_kind, status = (
            Message.Direction.OUTBOUND,
            Message.SenderKind.PHONE,
            Message.Status.SENT,
        )
    elif is_system:
        direction, sender_kind, status = (
            Message.Direction.INBOUND,
            Message.SenderKind.SYSTEM,
            Message.Status.RECEIVED,
        )
    else:
        direction, sender_kind, status = (
            Message.Direction.INBOUND,
            Message.SenderKind.CUSTOMER,
            Message.Status.RECEIVED,
        )
    mentioned = bool(account.wxid) and (
        account.wxid in inbound.at_wxids or "notify@all" in inbound.at_wxids
    )
    if not mentioned and inbound.is_group and account.nickname and inbound.text:
        mentioned = f"@{account.nickname}" in inbound.text
    message = Message(
        org=org,
        conversation=conversation,
        account=account,
        direction=direction,
        sender_kind=sender_kind,
        kind=kind,
        text=inbound.text or "",
        status=status,
        platform_msg_id=inbound.platform_msg_id[:64],
        to_wxid=inbound.chat_wxid if inbound.self_sent else "",
        # Platform data is data: a bad sender id / name is dropped or cut, the message kept.
        sender_wxid=pd.ident(inbound.sender_wxid, 128, field="message.sender_wxid"),
        sender_name=pd.text(inbound.sender_name, 200, field="message.sender_name"),
        mentions_account=mentioned,
        media_url=pd.url(inbound.media_url, 1000, field="message.media_url"),
        payload=inbound.meta if isinstance(inbound.meta, dict) else {},
        platform_created_at=_platform_time(inbound.created_at),
        sent_at=now if inbound.self_sent else None,
    )
    fields = ["last_message_at"]
    conversation.last_message_at = now
    if conversation_ai_resume_due(conversation, now):
        fields += ["mode", "ai_paused_until", "handoff_reason"]
    handoff_reason = ""
    if not inbound.self_sent and not is_system:
        text = message.text or ""
        if conversation.mode == Conversation.Mode.AI and any(
            k in text for k in handoff_keywords(org)
        ):
            handoff_reason = HandoffReason.KEYWORD
        else:
            message.triggers_ai = _should_trigger(
                conversation, contact, account, message, inbound, now
            )
    if conversation_media.inbound_media_expected(message):
        message.media_status = Message.MediaStatus.PENDING  # media: fetched after commit
    # Foreign keys are this transaction's own rows: skip full_clean's per-FK queries.
    exclude = ["org", "conversation", "account", "sender_user", "ai_app"]
    try:
        message.full_clean(exclude=exclude, validate_constraints=False)
    except ValidationError:
        message.media_url = ""  # a platform URL our validator refuses is not worth losing the text
        message.full_clean(exclude=exclude, validate_constraints=False)
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:
        return InboundResult("ignored", "duplicate message id")

    if inbound.self_sent:
        conversation.ai_paused_until = now + timedelta(
            seconds=settings.CONVERSATION_PHONE_PAUSE_SECONDS
        )
        conversation.mode = Conversation.Mode.HUMAN
        conversation.handoff_reason = HandoffReason.PHONE_REPLY
        conversation.handed_off_at = now
        fields += ["ai_paused_until", "mode", "handoff_reason", "handed_off_at"]
    elif not is_system:
        conversation.last_inbound_at = now
        conversation.unread_count += 1  # the row is locked: no lost update
        fields += ["last_inbound_at", "unread_count"]
        if conversation.status in (Conversation.Status.RESOLVED, Conversation.Status.SNOOZED):
            conversation.status = Conversation.Status.OPEN
            conversation.snooze_until = None
            conversation.resolved_at = None
            fields += ["status", "snooze_until", "resolved_at"]
    conversation.updated_at = now
    conversation.save(update_fields=[*dict.fromkeys(fields), "updated_at"])
    # One push carries the message and the conversation's new state.
    push_new_message(message, conversation)
    if message.media_status == Message.MediaStatus.PENDING:
        media_ids = {"org_id": org.pk, "message_id": message.pk}
        transaction.on_commit(lambda: conversation_media.schedule_fetch(**media_ids))
    if handoff_reason:
        conversation_handoff_locked(conversation, reason=handoff_reason)
    elif message.triggers_ai:
        from apps.conversations.ai import schedule_turn

        conversation_id, org_id = conversation.pk, org.pk
        transaction.on_commit(lambda: schedule_turn(org_id=org_id, conversation_id=conversation_id))
    return InboundResult("processed", "", message)


def _platform_time(value):
    """The platform's timestamp when it is a plausible one (2000-2100), else None."""
    if isinstance(value, datetime) and 2000 <= value.year <= 2100:
        return value
    if value is not None:
        pd.timestamp(value, field="message.created_at")  # counted and logged as dropped
    return None


def _should_trigger(conversation, contact, account, message, inbound, now) -> bool:
    if conversation.mode != Conversation.Mode.AI or contact.is_blocked:
        return False
    if (conversation.reply_mode or account.reply_mode) == "off":
        return False  # reply mode off: the AI neither answers nor drafts
    if message.kind != Message.Kind.TEXT or not message.text.strip():
        return False
    created = _platform_time(inbound.created_at)
    if created and (now - created).total_seconds() > settings.WEBHOOK_STALE_MESSAGE_SECONDS:
        return False  # history replayed after a re-login: stored, never answered
    return reply_policy_allows(account, message, is_group=inbound.is_group, contact=contact)


# -- handoff -------------------------------------------------------------------------------


def _notify_target(conversation: Conversation) -> int | None:
    if conversation.assignee_id:
        return conversation.assignee_id
    account = conversation.account
    return getattr(account, "owner_id", None) if account is not None else None


def conversation_handoff_locked(
    conversation: Conversation, *, reason: str, user=None
) -> Conversation:
    now = timezone.now()
    conversation.mode = Conversation.Mode.HUMAN
    conversation.status = Conversation.Status.PENDING
    conversation.handoff_reason = reason[:32]
    conversation.handed_off_at = now
    conversation.snooze_until = None
    _save(conversation, ["mode", "status", "handoff_reason", "handed_off_at", "snooze_until"])
    push_conversation_updated(conversation)
    org_id, conversation_id = conversation.org_id, conversation.pk
    assignee_id = _notify_target(conversation)
    user_id = getattr(user, "pk", None)

    def announce() -> None:
        events.conversation_handed_off.send(
            sender=Conversation,
            org_id=org_id,
            conversation_id=conversation_id,
            reason=reason,
            assignee_id=assignee_id,
            user_id=user_id,
        )

    transaction.on_commit(announce)
    return conversation


@transaction.atomic
def conversation_handoff(
    *,
    org: Organization | int,
    conversation_id: int,
    mode: str,
    reason: str = HandoffReason.AGENT,
    user=None,
) -> Conversation:
    """Switch a conversation to a person (``human``: status pending, the assignee or the
    account owner notified through ``conversation_handed_off``) or back to the AI (``ai``:
    customer messages received meanwhile count as dealt with, so the AI never answers stale
    questions)."""
    conversation = conversation_locked(org, conversation_id)
    if mode == Conversation.Mode.HUMAN:
        if conversation.mode == Conversation.Mode.HUMAN and conversation.status == (
            Conversation.Status.PENDING
        ):
            return conversation
        return conversation_handoff_locked(conversation, reason=reason, user=user)
    if mode != Conversation.Mode.AI:
        raise ApplicationError(_("Invalid data."), fields={"mode": [_("Use ai or human.")]})
    latest = (
        Message.objects.filter(conversation=conversation, direction=Message.Direction.INBOUND)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    conversation.mode = Conversation.Mode.AI
    conversation.handoff_reason = ""
    conversation.ai_paused_until = None
    conversation.ai_answered_message_id = max(conversation.ai_answered_message_id, latest or 0)
    if conversation.status == Conversation.Status.PENDING:
        conversation.status = Conversation.Status.OPEN
    _save(
        conversation,
        ["mode", "handoff_reason", "ai_paused_until", "ai_answered_message_id", "status"],
    )
    push_conversation_updated(conversation)
    return conversation


def _take_over_locked(conversation: Conversation, *, user) -> Conversation:
    """A person works this conversation now: human mode (the AI stays silent until 交回 AI, or
    the organisation's auto-return time after the last agent message), no longer waiting,
    assigned to ``user`` when it was unassigned. No handoff notification: the person is here."""
    now = timezone.now()
    fields: list[str] = []
    if conversation.mode != Conversation.Mode.HUMAN or (
        conversation.handoff_reason != HandoffReason.AGENT
    ):
        conversation.mode = Conversation.Mode.HUMAN
        conversation.handoff_reason = HandoffReason.AGENT
        conversation.handed_off_at = now
        fields += ["mode", "handoff_reason", "handed_off_at"]
    minutes = auto_return_minutes(conversation.org)
    paused_until = now + timedelta(minutes=minutes) if minutes else None
    if conversation.ai_paused_until != paused_until:
        conversation.ai_paused_until = paused_until
        fields.append("ai_paused_until")
    if conversation.status in (Conversation.Status.PENDING, Conversation.Status.SNOOZED):
        conversation.status = Conversation.Status.OPEN
        conversation.snooze_until = None
        fields += ["status", "snooze_until"]
    if conversation.assignee_id is None and user is not None:
        conversation.assignee = user
        fields.append("assignee")
    if fields:
        _save(conversation, fields)
        push_conversation_updated(conversation)
    return conversation


@transaction.atomic
def conversation_take_over(*, org: Organization, conversation_id: int, user) -> Conversation:
    """接管: the agent takes the conversation from the AI (see ``_take_over_locked``)."""
    return _take_over_locked(conversation_locked(org, conversation_id), user=user)


# -- inbox actions -------------------------------------------------------------------------


@transaction.atomic
def conversation_assign(*, org: Organization, conversation_id: int, assignee=None) -> Conversation:
    """Assign to a member of the organisation (``None`` unassigns)."""
    conversation = conversation_locked(org, conversation_id)
    if assignee is not None and not membership_exists(org=org, user=assignee):
        raise ApplicationError(
            _("Assignee is not a member of this organization."),
            fields={"assignee": [_("Unknown user.")]},
        )
    conversation.assignee = assignee
    _save(conversation, ["assignee"])
    push_conversation_updated(conversation)
    return conversation


@transaction.atomic
def conversation_resolve(*, org: Organization, conversation_id: int) -> Conversation:
    conversation = conversation_locked(org, conversation_id)
    conversation.status = Conversation.Status.RESOLVED
    conversation.resolved_at = timezone.now()
    conversation.snooze_until = None
    _save(conversation, ["status", "resolved_at", "snooze_until"])
    push_conversation_updated(conversation)
    return conversation


@transaction.atomic
def conversation_reopen(*, org: Organization, conversation_id: int) -> Conversation:
    conversation = conversation_locked(org, conversation_id)
    conversation.status = Conversation.Status.OPEN
    conversation.resolved_at = None
    conversation.snooze_until = None
    _save(conversation, ["status", "resolved_at", "snooze_until"])
    push_conversation_updated(conversation)
    return conversation


@transaction.atomic
def conversation_snooze(
    *, org: Organization, conversation_id: int, until: datetime
) -> Conversation:
    """Hide until ``until``; a customer message or the recovery task reopens it."""
    if until <= timezone.now():
        raise ApplicationError(
            _("Invalid data."), fields={"until": [_("Snooze until a time in the future.")]}
        )
    conversation = conversation_locked(org, conversation_id)
    conversation.status = Conversation.Status.SNOOZED
    conversation.snooze_until = until
    _save(conversation, ["status", "snooze_until"])
    push_conversation_updated(conversation)
    return conversation


def conversations_wake_snoozed_all_orgs(*, now: datetime | None = None) -> int:
    """Reopen snoozed conversations whose time has come (all organisations; periodic)."""
    now = now or timezone.now()
    count = 0
    for conversation_id, org_id in Conversation.objects.filter(
        status=Conversation.Status.SNOOZED, snooze_until__lte=now
    ).values_list("id", "org_id")[:1000]:
        with transaction.atomic():
            conversation = conversation_locked(org_id, conversation_id)
            if conversation.status == Conversation.Status.SNOOZED:
                conversation.status = Conversation.Status.OPEN
                conversation.snooze_until = None
                _save(conversation, ["status", "snooze_until"])
                push_conversation_updated(conversation)
                count += 1
    return count


@transaction.atomic
def conversation_set_labels(
    *, org: Organization, conversation_id: int, names: list[str]
) -> Conversation:
    """Replace the conversation's labels by ``names`` (labels are created as needed)."""
    conversation = conversation_locked(org, conversation_id)
    labels = []
    for name in dict.fromkeys(n.strip() for n in names if n and n.strip()):
        if len(name) > 60:
            raise ApplicationError(
                _("Invalid data."), fields={"labels": [_("A label has at most 60 characters.")]}
            )
        label = Label.objects.filter(org=org, name=name).first()
        if label is None:
            try:
                with transaction.atomic():
                    label = Label.objects.create(org=org, name=name)
            except IntegrityError:
                label = Label.objects.get(org=org, name=name)
        labels.append(label)
    conversation.labels.set(labels)
    _save(conversation, [])
    push_conversation_updated(conversation)
    return conversation


@transaction.atomic
def conversation_update(*, org: Organization, conversation_id: int, **fields: Any) -> Conversation:
    """Change ``priority``, the ``ai_app`` override (an AI app of this organisation, or None
    for the account's default) and/or the ``reply_mode`` override (auto / draft / off, or ""
    for the account's mode)."""
    unknown = set(fields) - {"priority", "ai_app", "reply_mode"}
    if unknown:
        raise ApplicationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    conversation = conversation_locked(org, conversation_id)
    ai_app = fields.get("ai_app")
    if ai_app is not None and ai_app.org_id != org.pk:
        raise ApplicationError(_("Invalid data."), fields={"ai_app": [_("Unknown AI app.")]})
    for name, value in fields.items():
        setattr(conversation, name, value)
    _save(conversation, list(fields))
    push_conversation_updated(conversation)
    return conversation


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


# -- agent replies and canned replies --------------------------------------------------------


def render_template(text: str, *, conversation: Conversation, user=None) -> str:
    """Fill ``{nickname}``, ``{remark}``, ``{account_name}``, ``{agent_name}``; unknown
    ``{names}`` stay as written."""
    contact = conversation.contact
    values = {
        "nickname": getattr(contact, "nickname", "") or getattr(contact, "wxid", ""),
        "remark": getattr(contact, "remark", "") or getattr(contact, "nickname", ""),
        "account_name": getattr(conversation.account, "name", ""),
        "agent_name": (user.get_full_name() if user is not None else "") or "",
    }

    return core_render_template(text, values)


def agent_reply(
    *,
    org: Organization,
    conversation_id: int,
    user,
    text: str = "",
    kind: str = Message.Kind.TEXT,
    url: str = "",
    file_name: str = "",
    title: str = "",
    canned_reply_id: int | None = None,
    client_msg_id: str = "",
    media_file=None,
    duration_s: int = 0,
) -> Message:
    """An agent's message through the outbound pipeline (queued; delivery is asynchronous).
    Image, file and video messages may carry an uploaded ``media_file`` (apps.media).

    The message takes the conversation over (``_take_over_locked``): the AI does not answer
    the customer's next message on top of the person."""
    conversation = (
        Conversation.objects.select_related("account", "contact", "account__org")
        .filter(org=org, pk=conversation_id)
        .first()
    )
    if conversation is None:
        raise NotFoundError(_("Conversation not found."))
    if conversation.account is None or conversation.contact is None:
        raise ConflictError(_("This conversation has no WeChat account or contact."))
    if canned_reply_id is not None:
        canned = CannedReply.objects.filter(org=org, pk=canned_reply_id).first()
        if canned is None:
            raise ApplicationError(
                _("Invalid data."), fields={"canned_reply": [_("Unknown canned reply.")]}
            )
        text = canned.text
    if kind == Message.Kind.TEXT:
        text = render_template(text or "", conversation=conversation, user=user)
    with transaction.atomic():
        message = outbound.send(
            org=org,
            account=conversation.account,
            to_wxid=conversation.contact.wxid,
            kind=kind,
            text=text,
            url=url,
            file_name=file_name,
            title=title,
            sender_kind=Message.SenderKind.AGENT,
            sender_user=user,
            urgent=True,
            client_msg_id=client_msg_id,
            conversation=conversation,
            **({"media_file": media_file, "duration_s": duration_s} if media_file else {}),
        )
        conversation = _take_over_locked(conversation_locked(org, conversation.pk), user=user)
        push_new_message(message, conversation)
    return message


@transaction.atomic
def canned_reply_create(*, org: Organization, user=None, **fields: Any) -> CannedReply:
    canned = CannedReply(org=org, created_by=user, **fields)
    if CannedReply.objects.filter(org=org, title=canned.title).exists():
        raise ApplicationError(
            _("Invalid data."), fields={"title": [_("A canned reply with this title exists.")]}
        )
    try:
        canned.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise ApplicationError(_("Invalid data."), fields=exc.message_dict) from exc
    canned.save()
    return canned


@transaction.atomic
def canned_reply_update(*, org: Organization, canned_reply_id: int, **fields: Any) -> CannedReply:
    canned = CannedReply.objects.select_for_update().filter(org=org, pk=canned_reply_id).first()
    if canned is None:
        raise NotFoundError(_("Canned reply not found."))
    title = fields.get("title")
    if title and CannedReply.objects.filter(org=org, title=title).exclude(pk=canned.pk).exists():
        raise ApplicationError(
            _("Invalid data."), fields={"title": [_("A canned reply with this title exists.")]}
        )
    for name, value in fields.items():
        setattr(canned, name, value)
    _save(canned, list(fields))
    return canned


@transaction.atomic
def canned_reply_delete(*, org: Organization, canned_reply_id: int) -> None:
    deleted, _d = CannedReply.objects.filter(org=org, pk=canned_reply_id).delete()
    if not deleted:
        raise NotFoundError(_("Canned reply not found."))
