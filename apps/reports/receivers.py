"""What the reports listen to: row saves of other apps (``post_save``; no sender imports us).

Handoffs and resolutions are recorded in the transaction that made them (the history other
apps do not keep); everything else only marks the conversation and hour as changed, after
commit, for the ``reports_refresh`` task. A receiver never breaks the caller's write: Redis
errors are logged and the nightly rebuild of recent days repairs what was missed.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.db.models.signals import m2m_changed, post_save
from django.utils import timezone

logger = logging.getLogger(__name__)

# Fields of a conversation that move its rows to other dimensions.
REDIM_FIELDS = frozenset({"assignee", "ai_app", "account"})


def _mark_on_commit(*, org_id: int, conversation_ids=(), at=(), redim=()) -> None:
    conversation_ids, at, redim = list(conversation_ids), list(at), list(redim)

    def mark() -> None:
        from apps.reports import services

        try:
            services.dirty_mark(
                org_id=org_id,
                conversation_ids=conversation_ids,
                at=at,
                redim_conversation_ids=redim,
            )
        except Exception:  # noqa: BLE001 - reports must never break the write that triggered them
            logger.exception("reports: could not mark org %s as changed", org_id)

    transaction.on_commit(mark)


def on_message_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw or not instance.conversation_id:
        return
    _mark_on_commit(
        org_id=instance.org_id,
        conversation_ids=[instance.conversation_id],
        at=[instance.created_at or timezone.now()],
    )


def on_conversation_saved(sender, instance, created, raw=False, update_fields=None, **kwargs):
    if raw:
        return
    from apps.reports import services

    fields = set(update_fields or ())
    if "handed_off_at" in fields and instance.handed_off_at is not None:
        services.event_record_handoff(
            org_id=instance.org_id,
            conversation_id=instance.pk,
            reason=instance.handoff_reason,
            at=instance.handed_off_at,
        )
    if (
        "resolved_at" in fields
        and instance.resolved_at is not None
        and (instance.status == "resolved")
    ):
        services.event_record_resolved(
            org_id=instance.org_id, conversation_id=instance.pk, at=instance.resolved_at
        )
    redim = update_fields is None or bool(fields & REDIM_FIELDS)
    _mark_on_commit(
        org_id=instance.org_id,
        conversation_ids=[instance.pk],
        at=[timezone.now()],
        redim=[instance.pk] if redim and not created else [],
    )


def on_labels_changed(sender, instance, action, pk_set=None, reverse=False, **kwargs) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if reverse:  # label.conversations.add(...): pk_set are conversations
        ids = list(pk_set or ())
        org_id = instance.org_id
    else:
        ids = [instance.pk]
        org_id = instance.org_id
    if ids:
        _mark_on_commit(org_id=org_id, conversation_ids=ids, redim=ids)


def on_turn_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    _mark_on_commit(
        org_id=instance.org_id,
        conversation_ids=[instance.conversation_id],
        at=[instance.created_at or timezone.now()],
    )


def on_ledger_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    ids = [instance.conversation_id] if instance.conversation_id else []
    _mark_on_commit(org_id=instance.org_id, conversation_ids=ids, at=[instance.created_at])


def on_status_event_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    _mark_on_commit(org_id=instance.org_id, at=[instance.at or timezone.now(), timezone.now()])


def on_draft_saved(sender, instance, created, raw=False, **kwargs) -> None:
    if raw:
        return
    at = [getattr(instance, "decided_at", None) or timezone.now()]
    _mark_on_commit(org_id=instance.org_id, conversation_ids=[instance.conversation_id], at=at)


def on_send_rate_limited(sender, org_id, account_id, **kwargs) -> None:
    """The send pipeline postponed a message (runs outside any transaction)."""
    from apps.reports import services

    try:
        now = timezone.now()
        services.deferral_record(org_id=org_id, account_id=account_id, at=now)
        _mark_on_commit(org_id=org_id, at=[now])
    except Exception:  # noqa: BLE001 - never break a send for a report
        logger.exception("reports: could not count a rate-limit deferral of org %s", org_id)


def connect() -> None:
    from django.apps import apps

    from apps.billing.models import CostLedger
    from apps.conversations.models import AITurn, Conversation, Message
    from apps.core import events
    from apps.wechat_accounts.models import AccountStatusEvent

    post_save.connect(on_message_saved, sender=Message, dispatch_uid="reports-message")
    post_save.connect(on_conversation_saved, sender=Conversation, dispatch_uid="reports-conv")
    post_save.connect(on_turn_saved, sender=AITurn, dispatch_uid="reports-turn")
    post_save.connect(on_ledger_saved, sender=CostLedger, dispatch_uid="reports-ledger")
    post_save.connect(
        on_status_event_saved, sender=AccountStatusEvent, dispatch_uid="reports-account-status"
    )
    events.send_rate_limited.connect(on_send_rate_limited, dispatch_uid="reports-deferral")
    m2m_changed.connect(
        on_labels_changed, sender=Conversation.labels.through, dispatch_uid="reports-labels"
    )
    try:
        draft = apps.get_model("conversations", "Draft")
    except LookupError:
        draft = None
    if draft is not None:
        post_save.connect(on_draft_saved, sender=draft, dispatch_uid="reports-draft")
