"""Processing (the task): claim the event, lock its chat, parse it, hand it to the owning app;
re-enqueue the truly stuck (expired claims)."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.core.stages import stage_observe
from apps.integrations.models import WebhookEvent
from apps.integrations.webhooks.events import WebhookRejected
from apps.integrations.webhooks.receive import PARSERS, enqueue_process
from apps.integrations.webhooks.routing import webhook_event_route

logger = logging.getLogger(__name__)


# -- processing (the task) -------------------------------------------------------------------


def _finish(event: WebhookEvent, status: str, error: str = "") -> None:
    event.status = status
    event.error = error[:500]
    event.processed_at = timezone.now()
    event.claimed_until = None
    event.processing_started_at = event.processing_started_at or event.processed_at
    event.save(
        update_fields=[
            "status",
            "error",
            "processed_at",
            "processing_started_at",
            "attempts",
            "claimed_until",
            "updated_at",
        ]
    )
    _observe_stages(event)


def _observe_stages(event: WebhookEvent) -> None:
    """Queue wait and processing of the event (apps.core.stages), counted once committed."""
    waited = (event.processing_started_at - event.created_at).total_seconds()
    worked = (event.processed_at - event.processing_started_at).total_seconds()
    transaction.on_commit(
        lambda: (stage_observe("queue_processing", waited), stage_observe("processing", worked))
    )


_CLAIM_SQL = """
UPDATE {table} SET claimed_until = %s
WHERE id = %s AND status = 'received' AND (claimed_until IS NULL OR claimed_until <= %s)
RETURNING connection_id, order_key
"""


def _claim(event_id: int, now: datetime) -> tuple[int, str] | None:
    """Take the event for ``WEBHOOK_CLAIM_LEASE_SECONDS`` (committed at once, outside the
    processing transaction, so the sweep sees it) and answer its (connection id, order key):
    None when it is done or another live worker has it. A claim whose lease expired (its
    worker died) may be taken again. One statement (``UPDATE ... RETURNING``)."""
    lease = now + timedelta(seconds=settings.WEBHOOK_CLAIM_LEASE_SECONDS)
    with connection.cursor() as cursor:
        cursor.execute(_CLAIM_SQL.format(table=WebhookEvent._meta.db_table), [lease, event_id, now])
        row = cursor.fetchone()
    return (row[0], row[1]) if row else None


def webhook_event_release(*, event_id: int, countdown: float = 0.0) -> None:
    """Hand the claim to the task's own retry, due in ``countdown`` seconds: the claim lasts
    until then (the retry may take it; the sweep only if the retry never comes)."""
    until = timezone.now() + timedelta(seconds=max(0.0, countdown))
    WebhookEvent.objects.filter(pk=event_id, status=WebhookEvent.Status.RECEIVED).update(
        claimed_until=until
    )


def chat_lock_key(connection_id: int, order_key: str) -> int:
    digest = hashlib.blake2b(
        f"webhook-chat:{connection_id}:{order_key}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big", signed=True)


def _lock_chat(connection_id: int, order_key: str) -> None:
    """Lock 1 of the core loop's order (``apps.conversations.locking``): the chat's
    transaction-level advisory lock, so one chat's events are applied one at a time and in
    order, while other chats of the same connection go on in parallel. SQLite has no
    concurrent writers and needs none."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(%s)", [chat_lock_key(connection_id, order_key)]
        )


def webhook_event_process(*, event_id: int) -> str:
    """Turn one stored event into rows (idempotent; see the module docstring). Returns the
    event's final status, or "skipped" when another worker has it or it is already done.

    Order: only what needs it. Events of one chat (``order_key``) are applied in arrival
    order: under the chat's lock a worker first applies that chat's older events still
    waiting (their rows locked in id order), then its own. Events of other chats, even of the
    same connection, never wait for each other (a whole connection in one order once cost 109
    deadlock retries in a 500-message burst). Locks follow ``apps.conversations.locking``.
    """
    claim = _claim(event_id, timezone.now())
    if claim is None:
        return "skipped"
    connection_id, order_key = claim
    started = timezone.now()
    try:
        with transaction.atomic():
            if order_key:
                _lock_chat(connection_id, order_key)
            older, event = _lock_events(event_id, connection_id, order_key)
            if event is None or event.status != WebhookEvent.Status.RECEIVED:
                return "skipped"
            event.processing_started_at = started
            for waiting in older:
                _process_one(waiting, isolated=True)
            return _process_one(event, isolated=False)
    except Exception as exc:
        logger.exception("webhook: processing event %s failed", event_id)
        # Count the attempt outside the rolled-back transaction; give up after the maximum.
        _count_failure(event_id, exc)
        raise


def _lock_events(
    event_id: int, connection_id: int, order_key: str
) -> tuple[list[WebhookEvent], WebhookEvent | None]:
    """Lock the event and the same chat's older events still waiting (none for events without
    a chat), ascending id (lock order 2 of ``apps.conversations.locking``), in one statement:
    (the older ones, the event). The chat lock is held, so no other worker is applying them:
    the row locks never wait."""
    locked = WebhookEvent.objects.select_for_update(of=("self",)).select_related(
        "connection", "org"
    )
    if not order_key:
        return [], locked.filter(pk=event_id).first()
    window = timezone.now() - timedelta(seconds=max(settings.WEBHOOK_STUCK_SECONDS, 60) * 10)
    waiting = Q(
        connection_id=connection_id,
        order_key=order_key,
        status=WebhookEvent.Status.RECEIVED,
        id__lt=event_id,
        created_at__gte=window,
        attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
    )
    rows = list(locked.filter(waiting | Q(pk=event_id)).order_by("id")[: _OLDER_LIMIT + 1])
    if rows and rows[-1].pk == event_id:
        return rows[:-1], rows[-1]
    # More than the limit wait: the oldest of them now, the event itself after them.
    return rows[:_OLDER_LIMIT], locked.filter(pk=event_id).first()


_OLDER_LIMIT = 100  # older events applied before the event itself, per run


def _process_one(event: WebhookEvent, *, isolated: bool) -> str:
    event.attempts += 1
    event.processing_started_at = event.processing_started_at or timezone.now()
    if not isolated:
        status, error = _apply(event)
        _finish(event, status, error)
        return status
    try:
        with transaction.atomic():
            status, error = _apply(event)
            _finish(event, status, error)
        return status
    except Exception as exc:  # noqa: BLE001 - an older event must not block the newer one
        logger.exception("webhook: processing older event %s failed", event.pk)
        failed = event.attempts >= settings.WEBHOOK_MAX_ATTEMPTS
        WebhookEvent.objects.filter(pk=event.pk).update(
            attempts=event.attempts,
            status=WebhookEvent.Status.FAILED if failed else WebhookEvent.Status.RECEIVED,
            # Left to the sweep: the next event of the chat or the sweep applies it.
            claimed_until=None if failed else timezone.now(),
            error=f"{type(exc).__name__}: {exc}"[:500],
            updated_at=timezone.now(),
        )
        return "failed"


def _count_failure(event_id: int, exc: Exception) -> None:
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None or event.status != WebhookEvent.Status.RECEIVED:
        return
    attempts = event.attempts + 1
    status = (
        WebhookEvent.Status.FAILED
        if attempts >= settings.WEBHOOK_MAX_ATTEMPTS
        else WebhookEvent.Status.RECEIVED
    )
    WebhookEvent.objects.filter(pk=event_id, status=WebhookEvent.Status.RECEIVED).update(
        attempts=attempts,
        status=status,
        # An expired claim: the sweep takes it again, unless the task re-queues itself (then
        # ``webhook_event_release`` hands the claim to the retry); a failed event has none.
        claimed_until=None if status == WebhookEvent.Status.FAILED else timezone.now(),
        error=f"{type(exc).__name__}: {exc}"[:500],
        updated_at=timezone.now(),
    )


def _apply(event: WebhookEvent) -> tuple[str, str]:
    parser = PARSERS[event.provider]
    try:
        parsed = parser(event.payload)
    except WebhookRejected as exc:
        return WebhookEvent.Status.REJECTED, str(exc)
    if parsed.kind == "ignored":
        return WebhookEvent.Status.IGNORED, f"{parsed.event_type}: {parsed.reason}"
    return webhook_event_route(event, parsed)


def webhook_events_requeue_stuck_all_orgs(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Enqueue again the events that are truly stuck, never one merely waiting on the queue:

    - a claim whose lease expired: its worker died (SIGKILL, OOM) or gave up, or the enqueue
      failed (``enqueue_process`` leaves an expired claim);
    - never claimed for longer than the broker's visibility timeout plus
      ``WEBHOOK_STUCK_SECONDS``: the broker would have delivered it by then, so it lost it.

    The claim is cleared as the event goes back on the queue, so the next sweep leaves it
    alone. Processing is idempotent, so a rare duplicate (a slow worker) is harmless."""
    now = now or timezone.now()
    lost = now - timedelta(
        seconds=settings.CELERY_VISIBILITY_TIMEOUT + settings.WEBHOOK_STUCK_SECONDS
    )
    stuck = Q(claimed_until__lte=now) | Q(claimed_until__isnull=True, updated_at__lt=lost)
    ids = list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED)
        .filter(stuck)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    count = 0
    for event_id in ids:
        # Conditional: a worker that claimed it meanwhile keeps it.
        if (
            WebhookEvent.objects.filter(pk=event_id, status=WebhookEvent.Status.RECEIVED)
            .filter(stuck)
            .update(claimed_until=None, updated_at=now)
        ):
            enqueue_process(event_id)
            count += 1
    return count
