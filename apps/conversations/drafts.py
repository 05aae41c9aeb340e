"""Copilot drafts: AI answers an agent sends, edits and sends, or discards (reply mode draft).

Public functions (the workspace and the API call these):

- ``send_draft(*, org, draft_id, user) -> Draft``: send the draft as written;
- ``edit_and_send_draft(*, org, draft_id, user, text) -> Draft``: send the agent's text instead;
- ``discard_draft(*, org, draft_id, user) -> Draft``;
- ``drafts_expire(*, now=None) -> int``: periodic, all organisations;
- ``draft_list(*, org, conversation_id=None, status=None)``: reads, org-scoped;
- ``draft_payload(draft) -> dict``: the JSON shape of pushes and the API.

A draft leaves ``pending`` exactly once, under its row lock: a second send (double click, two
agents, a retried request) raises ``ConflictError`` and sends nothing. The reply goes through the
outbound pipeline with idempotency keys ``draft:<id>:<n>``, so even a replayed transaction cannot
queue it twice. The assignee may decide; when the conversation is assigned to someone else a
manager (or above) may too; unassigned drafts are everyone's (agents and above).

Pushes (after commit) to the conversation's group and the organisation's inbox group:
``draft_created`` ``{"draft": {...}}`` and ``draft_updated`` ``{"draft": {...}}`` (sent,
edited, discarded, expired).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations import ai_settings
from apps.conversations.models import AITurn, Conversation, Draft, Message
from apps.core import realtime
from apps.core.exceptions import (
    ApplicationError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
)
from apps.orgs.models import Membership, Organization, Role, role_at_least

logger = logging.getLogger(__name__)


def draft_payload(draft: Draft) -> dict:
    return {
        "id": draft.pk,
        "conversation_id": draft.conversation_id,
        "turn_id": draft.turn_id,
        "reply_to_message_id": draft.reply_to_id,
        "ai_app_id": draft.ai_app_id,
        "text": draft.text,
        "sent_text": draft.sent_text,
        "mention_wxid": draft.mention_wxid,
        "mention_name": draft.mention_name,
        "status": draft.status,
        "expires_at": draft.expires_at.isoformat() if draft.expires_at else None,
        "decided_at": draft.decided_at.isoformat() if draft.decided_at else None,
        "decided_by": draft.decided_by_id,
        "created_at": draft.created_at.isoformat() if draft.created_at else None,
    }


def _push(event_type: str, draft: Draft) -> None:
    realtime.push_on_commit(
        event_type,
        {"draft": draft_payload(draft), "conversation_id": draft.conversation_id},
        groups=[
            realtime.group_for_conversation(draft.org_id, draft.conversation_id),
            realtime.group_for_conversations(draft.org_id),
        ],
    )


# -- reads ---------------------------------------------------------------------------------


def draft_list(
    *, org: Organization, conversation_id: int | None = None, status: str | None = None
) -> QuerySet[Draft]:
    queryset = Draft.objects.filter(org=org).select_related("conversation")
    if conversation_id is not None:
        queryset = queryset.filter(conversation_id=conversation_id)
    if status:
        queryset = queryset.filter(status=status)
    return queryset.order_by("-created_at", "-id")


def draft_get(*, org: Organization, draft_id: int) -> Draft:
    draft = Draft.objects.filter(org=org, pk=draft_id).first()
    if draft is None:
        raise NotFoundError(_("Draft not found."))
    return draft


# -- writes --------------------------------------------------------------------------------


def draft_create_locked(
    *,
    conversation: Conversation,
    turn: AITurn,
    reply_to: Message,
    ai_app,
    text: str,
    mention_wxid: str = "",
    mention_name: str = "",
) -> Draft:
    """Store the AI's answer as a pending draft (inside the AI turn's transaction, with the
    conversation row locked). One draft per turn."""
    existing = Draft.objects.filter(org_id=conversation.org_id, turn=turn).first()
    if existing is not None:
        return existing
    now = timezone.now()
    draft = Draft(
        org_id=conversation.org_id,
        conversation=conversation,
        turn=turn,
        reply_to=reply_to,
        ai_app=ai_app,
        text=text,
        mention_wxid=mention_wxid[:128],
        mention_name=mention_name[:200],
        expires_at=now + timedelta(minutes=ai_settings.draft_expiry_minutes(conversation.org)),
    )
    draft.full_clean(exclude=["org", "conversation", "turn", "reply_to", "ai_app", "decided_by"])
    draft.save(force_insert=True)
    _push("draft_created", draft)
    return draft


def _lock(org: Organization, draft_id: int) -> Draft:
    """The draft, locked after its conversation (the core loop's lock order,
    ``apps.conversations.locking``: an AI turn holds the conversation when it writes drafts)."""
    conversation_id = (
        Draft.objects.filter(org=org, pk=draft_id).values_list("conversation_id", flat=True).first()
    )
    if conversation_id is None:
        raise NotFoundError(_("Draft not found."))
    Conversation.objects.select_for_update().filter(org=org, pk=conversation_id).first()
    draft = (
        Draft.objects.select_for_update(of=("self",))
        .select_related("conversation", "conversation__account", "conversation__contact")
        .filter(org=org, pk=draft_id)
        .first()
    )
    if draft is None:
        raise NotFoundError(_("Draft not found."))
    return draft


def _check_may_decide(org: Organization, draft: Draft, user) -> None:
    membership = Membership.objects.filter(org=org, user=user).first()
    if membership is None or not role_at_least(membership.role, Role.AGENT):
        raise PermissionDeniedError(_("You cannot act on drafts of this organisation."))
    assignee_id = draft.conversation.assignee_id
    if assignee_id and assignee_id != user.pk and not role_at_least(membership.role, Role.MANAGER):
        raise PermissionDeniedError(_("This conversation is assigned to someone else."))


def _check_pending(draft: Draft, now: datetime) -> None:
    if draft.status != Draft.Status.PENDING:
        raise ConflictError(
            _("This draft was already %(status)s.") % {"status": draft.get_status_display()}
        )
    if draft.expires_at <= now:
        raise ConflictError(_("This draft has expired."))


def _send(org: Organization, draft: Draft, text: str, user) -> list[Message]:
    from apps.conversations.reply_send import send_reply

    conversation = (
        Conversation.objects.select_for_update(of=("self",))
        .select_related("account", "contact")
        .get(org=org, pk=draft.conversation_id)
    )
    if conversation.account is None or conversation.contact is None:
        raise ConflictError(_("This conversation has no WeChat account or contact."))
    return send_reply(
        conversation=conversation,
        text=text,
        key_prefix=f"draft:{draft.pk}",
        sender_kind=Message.SenderKind.AGENT,
        sender_user=user,
        mention_wxid=draft.mention_wxid,
        mention_name=draft.mention_name,
        ai_app=draft.ai_app,
    )


def _decide(draft: Draft, status: str, user, now: datetime, sent_text: str = "") -> Draft:
    draft.status = status
    draft.decided_at = now
    draft.decided_by = user
    draft.sent_text = sent_text
    draft.save(update_fields=["status", "decided_at", "decided_by", "sent_text", "updated_at"])
    _push("draft_updated", draft)
    return draft


@transaction.atomic
def send_draft(*, org: Organization, draft_id: int, user) -> Draft:
    """Send the draft as written (once; a second call raises ConflictError)."""
    draft = _lock(org, draft_id)
    now = timezone.now()
    _check_may_decide(org, draft, user)
    _check_pending(draft, now)
    _send(org, draft, draft.text, user)
    return _decide(draft, Draft.Status.SENT, user, now, sent_text=draft.text)


@transaction.atomic
def edit_and_send_draft(*, org: Organization, draft_id: int, user, text: str) -> Draft:
    """Send the agent's edited text instead of the draft (once)."""
    text = (text or "").strip()
    if not text:
        raise ApplicationError(_("Invalid data."), fields={"text": [_("Write the answer.")]})
    if len(text) > 10000:
        raise ApplicationError(
            _("Invalid data."), fields={"text": [_("At most 10000 characters.")]}
        )
    draft = _lock(org, draft_id)
    now = timezone.now()
    _check_may_decide(org, draft, user)
    _check_pending(draft, now)
    _send(org, draft, text, user)
    status = Draft.Status.SENT if text == draft.text.strip() else Draft.Status.EDITED
    return _decide(draft, status, user, now, sent_text=text)


@transaction.atomic
def discard_draft(*, org: Organization, draft_id: int, user) -> Draft:
    draft = _lock(org, draft_id)
    now = timezone.now()
    _check_may_decide(org, draft, user)
    if draft.status != Draft.Status.PENDING:
        raise ConflictError(
            _("This draft was already %(status)s.") % {"status": draft.get_status_display()}
        )
    return _decide(draft, Draft.Status.DISCARDED, None if user is None else user, now)


def drafts_expire(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Mark pending drafts past their expiry as expired (all organisations; periodic)."""
    now = now or timezone.now()
    count = 0
    due = list(
        Draft.objects.filter(status=Draft.Status.PENDING, expires_at__lte=now).values_list(
            "org_id", "pk"
        )[:limit]
    )
    for org_id, draft_id in due:
        with transaction.atomic():
            draft = (
                Draft.objects.select_for_update()
                .filter(org_id=org_id, pk=draft_id, status=Draft.Status.PENDING)
                .first()
            )
            if draft is None:
                continue
            draft.status = Draft.Status.EXPIRED
            draft.decided_at = now
            draft.save(update_fields=["status", "decided_at", "updated_at"])
            _push("draft_updated", draft)
            count += 1
    return count
