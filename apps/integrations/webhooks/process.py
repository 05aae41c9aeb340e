"""Processing (the task): lock the event, parse it, hand it to the owning app; requeue stuck."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
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
    event.processing_started_at = event.processing_started_at or event.processed_at
    event.save(
        update_fields=[
            "status",
            "error",
            "processed_at",
            "processing_started_at",
            "attempts",
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


def webhook_event_process(*, event_id: int) -> str:
    """Turn one stored event into rows (idempotent; see the module docstring). Returns the
    event's final status, or "skipped" when another worker has it or it is already done.

    Order: events of one connection are applied in arrival order. Before its own event a worker
    applies the connection's older events still waiting, taking their row locks in id order
    (blocking, so it waits for a worker busy with an older one; the lock order rules out
    deadlocks). A quick customer who writes twice is therefore never recorded out of order.
    """
    started = timezone.now()
    try:
        with transaction.atomic():
            event = (
                WebhookEvent.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("connection", "org")
                .filter(pk=event_id)
                .first()
            )
            if event is None or event.status != WebhookEvent.Status.RECEIVED:
                return "skipped"
            event.processing_started_at = started
            for older in _older_waiting(event):
                _process_one(older, isolated=True)
            return _process_one(event, isolated=False)
    except Exception as exc:
        logger.exception("webhook: processing event %s failed", event_id)
        # Count the attempt outside the rolled-back transaction; give up after the maximum.
        _count_failure(event_id, exc)
        raise


def _older_waiting(event: WebhookEvent) -> list[WebhookEvent]:
    from datetime import timedelta

    window = timezone.now() - timedelta(seconds=max(settings.WEBHOOK_STUCK_SECONDS, 60) * 10)
    return list(
        WebhookEvent.objects.select_for_update(of=("self",))
        .select_related("connection", "org")
        .filter(
            connection_id=event.connection_id,
            status=WebhookEvent.Status.RECEIVED,
            id__lt=event.pk,
            created_at__gte=window,
            attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
        )
        .order_by("id")[:100]
    )


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
    """Enqueue again the events still ``received`` after ``WEBHOOK_STUCK_SECONDS`` (a lost
    broker task or a killed worker). Processing is idempotent, so a duplicate is harmless."""
    from datetime import timedelta

    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_STUCK_SECONDS)
    ids = list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED, updated_at__lt=stale)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    for event_id in ids:
        WebhookEvent.objects.filter(pk=event_id, status=WebhookEvent.Status.RECEIVED).update(
            updated_at=now
        )
        enqueue_process(event_id)
    return len(ids)
