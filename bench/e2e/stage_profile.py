"""Where each message's time went, read from the timestamps the loop stores (no extra probes).

Boundaries (wall clock, seconds; the bench, Daphne, the workers and the simulators share one
machine's clock):

    POST started (bench) -> WebhookEvent.created_at                 ingest
    -> WebhookEvent.processing_started_at                           queue_processing
    -> WebhookEvent.processed_at                                    processing
    -> AITurn.created_at                                            queue_ai
    -> AITurn.finished_at                                           ai
    -> reply Message.call_started_at                                send
    -> the GeWe simulator accepted the reply (bench)                platform

The stages add up to the end-to-end time. Details printed besides: ``ai`` split into the AI
provider call (``AITurn.latency_ms``) and our own time around it (``ai_own``: context, billing,
the reply queued); ``send`` split into the send task's queue wait (``AITurn.finished_at`` ->
``claimed_at``) and our own time from the claim to the platform call (``send_own``). The same
stages feed ``/metrics`` (``apps.core.stages``).

Queue waits grow with the backlog; they show where messages wait, not what is slow. What is
slow is named from the worker time per message: processing + ai_own + the provider call +
send_own + platform (the workers can serve at most ``workers / worker time`` messages a
second, less Celery's own overhead per task).
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict

STAGES = ("ingest", "queue_processing", "processing", "queue_ai", "ai", "send", "platform")
DETAILS = ("ai_provider_call", "ai_own", "send_queue_wait", "send_own")
# Where a worker is busy with the message (the rest is waiting in a queue or for a lock).
WORK = ("processing", "ai_provider_call", "ai_own", "send_own", "platform")


def stage_samples(
    posted: dict[str, float], dedupe_keys: dict[str, str], accepted: dict[str, float]
) -> dict[str, list[float]]:
    """``{stage: [seconds, ...]}`` over the answered messages (``token -> ...`` maps)."""
    from apps.conversations.models import AITurn, Message
    from apps.integrations.models import WebhookEvent

    tokens = [t for t in posted if t in accepted]
    samples: dict[str, list[float]] = defaultdict(list)
    if not tokens:
        return samples
    events = {
        key: (created.timestamp(), started, processed)
        for key, created, started, processed in WebhookEvent.objects.filter(
            dedupe_key__in=[dedupe_keys[t] for t in tokens]
        ).values_list("dedupe_key", "created_at", "processing_started_at", "processed_at")
    }
    inbound = {
        text: (pk, conversation_id)
        for text, pk, conversation_id in Message.objects.filter(
            direction=Message.Direction.INBOUND, text__in=tokens
        ).values_list("text", "id", "conversation_id")
    }
    if not inbound:
        return samples
    conversations = {conversation_id for _pk, conversation_id in inbound.values()}
    first_id = min(pk for pk, _c in inbound.values())
    turns: dict[int, list[tuple]] = defaultdict(list)
    for row in (
        AITurn.objects.filter(conversation_id__in=conversations, last_message_id__gte=first_id)
        .order_by("last_message_id")
        .values_list(
            "conversation_id", "last_message_id", "id", "created_at", "finished_at", "latency_ms"
        )
    ):
        turns[row[0]].append(row[1:])
    replies: dict[int, tuple] = {}
    for key, created, claimed, call_started in (
        Message.objects.filter(
            direction=Message.Direction.OUTBOUND,
            conversation_id__in=conversations,
            client_msg_id__startswith="ai:",
            id__gt=first_id,
        )
        .order_by("id")
        .values_list("client_msg_id", "created_at", "claimed_at", "call_started_at")
    ):
        turn_id = int(key.split(":")[1])
        replies.setdefault(turn_id, (created, claimed, call_started))  # the first chunk
    for token in tokens:
        event = events.get(dedupe_keys[token])
        message = inbound.get(token)
        if event is None or message is None or None in event:
            continue
        pk, conversation_id = message
        candidates = turns.get(conversation_id, [])
        # The turn that answered it: its own, or a later one that merged it.
        index = bisect_left([c[0] for c in candidates], pk)
        if index >= len(candidates):
            continue
        _last, turn_id, turn_started, turn_finished, provider_ms = candidates[index]
        reply = replies.get(turn_id)
        if turn_finished is None or reply is None or reply[2] is None:
            continue
        created, started, processed = event
        bounds = [
            posted[token],
            created,
            started.timestamp(),
            processed.timestamp(),
            turn_started.timestamp(),
            turn_finished.timestamp(),
            reply[2].timestamp(),
            accepted[token],
        ]
        for stage, (begin, end) in zip(STAGES, zip(bounds, bounds[1:], strict=False), strict=True):
            samples[stage].append(end - begin)
        if provider_ms is not None:
            samples["ai_provider_call"].append(provider_ms / 1000.0)
            samples["ai_own"].append(bounds[5] - bounds[4] - provider_ms / 1000.0)
        if reply[1] is not None:
            # The send task is enqueued when the turn's transaction commits (after finished_at).
            claimed = reply[1].timestamp()
            samples["send_queue_wait"].append(claimed - bounds[5])
            samples["send_own"].append(bounds[6] - claimed)
    return samples


def _means(samples: dict[str, list[float]], names) -> dict[str, float]:
    return {s: sum(v) / len(v) for s in names if (v := samples.get(s))}


def bottleneck(samples: dict[str, list[float]]) -> dict:
    """Where messages wait (the stage with the largest share of the mean end-to-end time) and
    where the workers' time goes (the largest share of the mean worker time per message)."""
    waits = _means(samples, STAGES)
    work = _means(samples, WORK)
    total, busy = sum(waits.values()), sum(work.values())
    if not total or not busy:
        return {"waits_most": "", "waits_share": 0.0, "works_most": "", "works_share": 0.0}
    waits_most, works_most = max(waits, key=waits.get), max(work, key=work.get)
    return {
        "waits_most": waits_most,
        "waits_share": round(waits[waits_most] / total, 3),
        "works_most": works_most,
        "works_share": round(work[works_most] / busy, 3),
        "worker_ms_per_message": round(busy * 1000, 1),
    }
