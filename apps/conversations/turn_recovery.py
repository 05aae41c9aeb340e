"""AI turns that outlive their worker: the turn's lease and its periodic recovery.

A running turn holds two leases, both short and renewed while its worker works:

- the conversation's Redis lock (``CONVERSATION_AI_LOCK_SECONDS``), renewed every third of
  its lifetime by a background thread for as long as the turn runs (``renewing``), so a killed
  worker's conversation is free again within seconds, however long a healthy AI call takes;
- ``AITurn.lease_until`` (``CONVERSATION_AI_TURN_LEASE_SECONDS``), set with the turn's start
  and renewed from the worker before each AI app call once a third of it has run out (one
  statement less per turn when the first call follows the start), so the database says which
  turns nobody looks after.

``ai_turns_recover`` (run by the periodic ``core_loop_recover``) takes the turns still
``running`` past their lease whose conversation lock is free and whose turn task is not on the
queue (the worker died, or the task failed, e.g. on a deadlock) and either re-queues them
(the next run reuses the row: the reply keys ``ai:<turn>:<n>`` make a second answer
impossible) or closes them with a reason:

- ``skipped``, "superseded": a later turn answered (or answers) these messages;
- ``skipped``, "with a person": the conversation left AI mode meanwhile;
- ``handed_off``: the turn was lost ``CONVERSATION_AI_TURN_MAX_LOST`` times; a person gets
  the conversation, the customer's messages stay (never lost, never silently dropped).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.conversations.models import AITurn, Conversation
from apps.core.locks import RedisLock

logger = logging.getLogger(__name__)


def turn_lease_renew(turn_id: int, *, now: datetime | None = None) -> None:
    """Push the running turn's lease forward (the worker is alive and on it)."""
    now = now or timezone.now()
    lease = now + timedelta(seconds=settings.CONVERSATION_AI_TURN_LEASE_SECONDS)
    AITurn.objects.filter(pk=turn_id, status=AITurn.Status.RUNNING).update(lease_until=lease)


@contextlib.contextmanager
def renewing(lock: RedisLock) -> Iterator[None]:
    """Keep ``lock`` alive while the block runs: renewed every third of its lifetime by a
    daemon thread, which dies with the process (then the lock expires within its TTL)."""
    stop = threading.Event()
    interval = max(0.05, lock.ttl_ms / 3000)

    def renew() -> None:
        while not stop.wait(interval):
            try:
                if not lock.extend():
                    logger.warning("ai: the turn lock %s was lost", lock.key)
                    return
            except Exception:  # noqa: BLE001 - a Redis blip: try again at the next tick
                logger.warning("ai: renewing the turn lock failed", exc_info=True)

    thread = threading.Thread(target=renew, name="ai-turn-lock", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=1)


def ai_turns_recover(*, now: datetime | None = None, limit: int = 200) -> dict[str, int]:
    """Re-queue or close the AI turns left ``running`` past their lease (see the module
    docstring). Idempotent: a re-queued turn gets a fresh lease, so the next pass leaves it
    alone until that lease runs out too."""
    from apps.conversations.ai import _turn_pending_or_running, schedule_turn

    now = now or timezone.now()
    lease = timedelta(seconds=settings.CONVERSATION_AI_TURN_LEASE_SECONDS)
    expired = Q(lease_until__lt=now) | Q(lease_until__isnull=True, updated_at__lt=now - lease)
    rows = list(
        AITurn.objects.filter(status=AITurn.Status.RUNNING)
        .filter(expired)
        .order_by("id")
        .values_list("org_id", "conversation_id", "id")[:limit]
    )
    counts = {"requeued": 0, "closed": 0, "handed_off": 0}
    # A live worker is on the conversation (its lock is renewed), or the turn's task waits on
    # the queue (a backlog, not a loss): leave those alone.
    busy = _turn_pending_or_running([conversation_id for _o, conversation_id, _t in rows])
    for org_id, conversation_id, turn_id in rows:
        if conversation_id in busy:
            continue
        outcome = _recover_one(org_id, conversation_id, turn_id, now, expired)
        if outcome == "requeue":
            schedule_turn(org_id=org_id, conversation_id=conversation_id, countdown=0)
            counts["requeued"] += 1
        elif outcome:
            counts[outcome] += 1
    return counts


def _recover_one(org_id, conversation_id, turn_id, now, expired) -> str:
    from apps.conversations.ai import _handoff
    from apps.conversations.services import HandoffReason, conversation_locked

    with transaction.atomic():
        # The documented lock order (apps.conversations.locking): conversation, then turn.
        conversation = conversation_locked(org_id, conversation_id)
        turn = (
            AITurn.objects.select_for_update(of=("self",))
            .select_related("last_message")
            .filter(expired, pk=turn_id, status=AITurn.Status.RUNNING)
            .first()
        )
        if turn is None:
            return ""
        superseded = conversation.ai_answered_message_id >= turn.last_message_id or (
            AITurn.objects.filter(
                conversation_id=conversation_id,
                member_wxid=turn.member_wxid,
                last_message_id__gt=turn.last_message_id,
            ).exists()
        )
        if superseded or conversation.mode != Conversation.Mode.AI:
            reason = (
                "recovered: superseded by a later turn"
                if superseded
                else "recovered: the conversation is with a person"
            )
            _close(turn, AITurn.Status.SKIPPED, reason, now)
            return "closed"
        if turn.attempts < settings.CONVERSATION_AI_TURN_MAX_LOST:
            AITurn.objects.filter(org_id=turn.org_id, pk=turn.pk).update(
                lease_until=now + timedelta(seconds=settings.CONVERSATION_AI_TURN_LEASE_SECONDS),
                updated_at=now,
            )
            return "requeue"
    error = f"recovered: the turn was lost {turn.attempts} times (worker killed or failing)"
    logger.warning("ai: turn %s of conversation %s: %s", turn.pk, conversation_id, error)
    _handoff(conversation, turn, turn.last_message, HandoffReason.AI_FAILED, error)
    return "handed_off"


def _close(turn: AITurn, status: str, reason: str, now: datetime) -> None:
    AITurn.objects.filter(org_id=turn.org_id, pk=turn.pk).update(
        status=status, error=reason[:500], finished_at=now, lease_until=None, updated_at=now
    )
