"""Where a customer message's time goes: one histogram per stage of the core loop.

Each stage is observed where it ends, with ``stage_observe`` (a duration) or
``stage_observe_since`` (from a stored timestamp to now). Observations are counted in Redis (one
pipelined round trip: a bucket counter and the sum), so the Daphne and Celery processes add up,
and ``/metrics`` exposes them as ``sa_loop_stage_duration_seconds{stage=...}``. No SQL query is
added to the loop. ``bench/e2e`` splits each message with the same boundaries, read from the
stored timestamps.

Stages, in the order a message goes through them:

- ``ingest``: the webhook view, from the request reaching it to the event row stored.
- ``queue_processing``: event stored (``WebhookEvent.created_at``) to a worker starting on it
  (``processing_started_at``).
- ``processing``: ``processing_started_at`` to ``processed_at`` (the connection's older events,
  parsing, contact, conversation and message rows, the live push).
- ``queue_ai``: the customer message recorded to its AI turn starting (``AITurn.created_at``).
  bench/e2e counts it from the event's ``processed_at``, a few milliseconds later.
- ``ai``: the AI turn, from its start to its end (``AITurn.finished_at``): context, billing
  reservation, the provider call, the reply queued.
- ``send``: the reply queued (``Message.created_at``) to the platform call starting
  (``call_started_at``): the send task's queue wait, order and rate checks, the claim.
- ``platform``: the platform's send call.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.utils import timezone

from apps.core.redis import get_redis, redis_key

logger = logging.getLogger(__name__)

STAGES = ("ingest", "queue_processing", "processing", "queue_ai", "ai", "send", "platform")
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_BUCKETS = ("core", "stages", "buckets")
_SUMS = ("core", "stages", "sums")
_SEP = "\x1f"


def stage_observe(stage: str, seconds: float) -> None:
    """Count one observation of ``stage`` (never raises into the loop)."""
    seconds = max(0.0, float(seconds))
    index = next((i for i, le in enumerate(STAGE_BUCKETS) if seconds <= le), len(STAGE_BUCKETS))
    try:
        pipe = get_redis().pipeline(transaction=False)
        pipe.hincrby(redis_key(*_BUCKETS), f"{stage}{_SEP}{index}", 1)
        pipe.hincrbyfloat(redis_key(*_SUMS), stage, seconds)
        pipe.execute()
    except Exception:  # noqa: BLE001 - metrics must never break the loop.
        logger.debug("could not record stage %s", stage, exc_info=True)


def stage_observe_since(stage: str, started: datetime | None) -> None:
    """Count ``stage`` as lasting from ``started`` (a stored timestamp) to now."""
    if started is not None:
        stage_observe(stage, (timezone.now() - started).total_seconds())


def stage_histograms() -> dict[str, tuple[list[tuple[str, float]], float]]:
    """``{stage: ([(le, cumulative count), ..., ("+Inf", count)], sum)}`` of every stage
    observed (all processes), for the Prometheus collector."""
    client = get_redis()
    raw = client.hgetall(redis_key(*_BUCKETS)) or {}
    sums = client.hgetall(redis_key(*_SUMS)) or {}
    counts: dict[str, list[float]] = {}
    for field, value in raw.items():
        stage, _sep, index = _text(field).partition(_SEP)
        counts.setdefault(stage, [0.0] * (len(STAGE_BUCKETS) + 1))[int(index)] += float(value)
    result = {}
    for stage, per_bucket in counts.items():
        cumulative, running = [], 0.0
        for le, count in zip((*map(str, STAGE_BUCKETS), "+Inf"), per_bucket, strict=True):
            running += count
            cumulative.append((le, running))
        total = next((float(v) for k, v in sums.items() if _text(k) == stage), 0.0)
        result[stage] = (cumulative, total)
    return result


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
