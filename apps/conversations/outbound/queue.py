"""The pipeline's queue: enqueue a delivery attempt, per-contact order, status pushes."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Exists, OuterRef

from apps.conversations.models import Message
from apps.core import realtime
from apps.wechat_accounts.send_policy import human_delay

KINDS = (
    Message.Kind.TEXT,
    Message.Kind.IMAGE,
    Message.Kind.FILE,
    Message.Kind.VIDEO,
    Message.Kind.LINK,
)
# Kinds that carry a file: a public ``url`` or a stored ``media_file`` (apps.media).
MEDIA_KINDS = (Message.Kind.IMAGE, Message.Kind.FILE, Message.Kind.VIDEO)
UNFINISHED = (Message.Status.QUEUED, Message.Status.SENDING)

logger = logging.getLogger(__name__)

_inline_first = contextvars.ContextVar("outbound_inline_first", default=False)


@contextmanager
def inline_first_attempt() -> Iterator[None]:
    """Messages queued in this block for immediate delivery get their first attempt in this
    process, right after their commit, instead of a trip through the ``send`` queue (issue 19:
    one Celery task fewer per AI reply, and no wait behind the send worker). Only the first
    attempt: a wait (human-like delay, rate limit, quiet hours, backoff) and every retry still
    go through the queue, and exactly-once is the claim's as always (a queued task for the same
    message finds it claimed and skips). ``OUTBOUND_INLINE_FIRST_ATTEMPT`` switches it off."""
    token = _inline_first.set(True)
    try:
        yield
    finally:
        _inline_first.reset(token)


def inline_requested() -> bool:
    """Whether a message queued now asks for an inline first attempt (read at queueing time:
    the attempt itself runs after the commit, possibly outside the block)."""
    return _inline_first.get() and settings.OUTBOUND_INLINE_FIRST_ATTEMPT


def dispatch(*, org_id: int, message_id: int, countdown: float, human: bool, inline: bool) -> bool:
    """After a message's commit (an on-commit callback, so outside any transaction): attempt
    it here (``inline``, no wait due), else ``enqueue`` it. An inline attempt that raises is
    logged and handed to the queue, which skips the message if the attempt got as far as
    claiming it (recovery then decides, as for a killed worker)."""
    if inline and countdown <= 0:
        from apps.conversations.outbound.delivery import outbound_deliver

        try:
            outbound_deliver(org_id=org_id, message_id=message_id)
            return True
        except Exception:
            logger.exception("outbound: inline attempt of message %s failed", message_id)
    return enqueue(org_id=org_id, message_id=message_id, countdown=countdown, human=human)


def enqueue(*, org_id: int, message_id: int, countdown: float = 0.0, human: bool = False) -> bool:
    """Enqueue a delivery attempt after ``countdown`` seconds. Under eager Celery (unit tests)
    a wait (rate limit, backoff, quiet hours) is not run inline, which would recurse; the
    recovery task or the test runs it later. ``human`` marks the human-like delay, which eager
    mode simply skips."""
    from apps.conversations.tasks import outbound_deliver as outbound_deliver_task

    if settings.CELERY_TASK_ALWAYS_EAGER and countdown > 0 and not human:
        return False
    outbound_deliver_task.apply_async(
        kwargs={"org_id": org_id, "message_id": message_id},
        # A countdown beyond the broker's visibility timeout would be delivered twice; woken
        # early, the delivery sees ``not_before`` ahead and defers again.
        countdown=min(max(0.0, countdown), settings.CELERY_MAX_COUNTDOWN_SECONDS),
    )
    return True


def _older_unfinished(message_qs_ref: Any = None) -> Exists:
    return Exists(
        Message.objects.filter(
            account_id=OuterRef("account_id"),
            to_wxid=OuterRef("to_wxid"),
            direction=Message.Direction.OUTBOUND,
            status__in=UNFINISHED,
            id__lt=OuterRef("id"),
        )
    )


@dataclass(frozen=True)
class DeliveryResult:
    outcome: str  # sent, failed, retry, rate_limited, deferred, waiting, not_online, skipped
    retry_after: float = 0.0


def _push_status(message: Message) -> None:
    data = {
        "message_id": message.pk,
        "conversation_id": message.conversation_id,
        "account_id": message.account_id,
        "status": message.status,
        "platform_msg_id": message.platform_msg_id,
        "error": message.error,
        "attempts": message.attempts,
        "sent_at": message.sent_at,
    }
    realtime.push_on_commit(
        "message_status_update",
        data,
        groups=[
            realtime.group_for_conversation(message.org_id, message.conversation_id),
            realtime.group_for_conversations(message.org_id),
        ],
    )


def _reload(org_id: int, message_id: int) -> Message:
    return Message.objects.select_related("account", "account__org", "account__connection").get(
        org_id=org_id, pk=message_id
    )


def _kick_next(message: Message) -> None:
    """Enqueue the oldest queued message to the same contact (per-contact order)."""
    nxt = (
        Message.objects.filter(
            org_id=message.org_id,
            account_id=message.account_id,
            to_wxid=message.to_wxid,
            direction=Message.Direction.OUTBOUND,
            status=Message.Status.QUEUED,
        )
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )
    if nxt is not None:
        account = message.account
        enqueue(org_id=message.org_id, message_id=nxt, countdown=human_delay(account), human=True)
