"""Intent and sentiment of customer messages, by the organisation's typed analysis mode.

- ``analyse_inbound(*, conversation, reply_app, messages) -> bool``: in the AI turn; stores the
  results on the newest customer message and answers True when the sentiment is at or below
  the organisation's handoff threshold (``ai_settings.negative_handoff_threshold``);
- ``analysis_backfill(*, org, start, end, ...) -> BackfillResult``: analyse the customer
  messages of a date range that have no result yet, through the batch client
  (``apps.integrations.clients.ai.batch``) with at most ``CONVERSATION_ANALYSIS_BATCH_CONCURRENCY``
  (10) calls in flight, metered per call in the ledger (``record_usage``, kinds ``intent`` /
  ``sentiment``, request ids ``analysis:<kind>:<message id>`` so a re-run never bills twice),
  with a progress callback. Used by ``manage.py analysis_backfill`` and the message admin action.

The analysis apps are the organisation's default ``intent`` / ``sentiment`` apps, else the reply
app. Failures are logged and never block the answer.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.conversations import ai_settings
from apps.conversations.models import Conversation, Message

logger = logging.getLogger(__name__)


def _app_for(org_id: int, purpose: str, fallback):
    from apps.integrations.selectors import ai_app_default

    return ai_app_default(org=org_id, purpose=purpose) or fallback


def _meter(org, ai_app, kind: str, message_id: int, chat, conversation_id=None) -> None:
    """One ledger row per analysis call (never refused: analysis is cheap and optional)."""
    if chat is None:
        return
    from apps.billing import services as billing

    try:
        billing.record_usage(
            org=org,
            provider=ai_app.provider,
            model=ai_app.model or ai_app.app_id or ai_app.provider,
            request_id=f"analysis:{kind}:{message_id}",
            kind=kind,
            input_tokens=chat.input_tokens or 0,
            output_tokens=chat.output_tokens or 0,
            conversation_id=conversation_id,
            provider_cost=chat.provider_cost,
            provider_currency=chat.currency or "",
            usage_source="reported" if chat.input_tokens is not None else "estimated",
        )
    except Exception:  # noqa: BLE001 - billing can be reconciled; the analysis is stored
        logger.exception("analysis: metering message %s failed", message_id)


def analyse_text(
    *, org, text: str, mode: str, reply_app=None, message_id: int = 0, conversation_id=None
) -> dict[str, Any]:
    """Intent (and sentiment, by ``mode``) of ``text``: the fields to store on the message.
    Provider errors of one part are logged; the other part still counts."""
    from apps.integrations.clients.ai import analyze_intent, analyze_sentiment
    from apps.integrations.models import AIApp
    from apps.integrations.services import ai_client_for

    org_id = getattr(org, "pk", org)
    fields: dict[str, Any] = {}
    if mode == ai_settings.ANALYSIS_OFF:
        return fields
    app = _app_for(org_id, AIApp.Purpose.INTENT, reply_app)
    if app is not None:
        try:
            result = analyze_intent(ai_client_for(app), text)
            fields["intent"] = result.intent[:32]
            _meter(org, app, "intent", message_id, result.chat, conversation_id)
        except Exception as exc:  # noqa: BLE001
            logger.warning("analysis: intent of message %s failed: %s", message_id, exc)
    if mode == ai_settings.ANALYSIS_INTENT_SENTIMENT:
        app = _app_for(org_id, AIApp.Purpose.SENTIMENT, reply_app)
        if app is not None:
            try:
                result = analyze_sentiment(ai_client_for(app), text)
                if not result.fallback:
                    fields["sentiment"] = result.sentiment[:16]
                    fields["sentiment_score"] = result.score
                _meter(org, app, "sentiment", message_id, result.chat, conversation_id)
            except Exception as exc:  # noqa: BLE001
                logger.warning("analysis: sentiment of message %s failed: %s", message_id, exc)
    return fields


def analyse_inbound(*, conversation: Conversation, reply_app, messages: list[Message]) -> bool:
    org = conversation.org
    mode = ai_settings.analysis_mode(org)
    if mode == ai_settings.ANALYSIS_OFF or not messages:
        return False
    last = messages[-1]
    fields = analyse_text(
        org=org,
        text="\n".join(m.display_text for m in messages),
        mode=mode,
        reply_app=reply_app,
        message_id=last.pk,
        conversation_id=conversation.pk,
    )
    if fields:
        Message.objects.filter(org_id=conversation.org_id, pk=last.pk).update(
            **fields, updated_at=timezone.now()
        )
        for name, value in fields.items():
            setattr(last, name, value)
    threshold = ai_settings.negative_handoff_threshold(org)
    score = fields.get("sentiment_score")
    return threshold is not None and score is not None and score <= threshold


@dataclass
class BackfillResult:
    total: int = 0
    analysed: int = 0
    failed: int = 0


def analysis_backfill_queryset(*, org, start: datetime, end: datetime, redo: bool = False):
    queryset = Message.objects.filter(
        org=org,
        direction=Message.Direction.INBOUND,
        sender_kind=Message.SenderKind.CUSTOMER,
        kind=Message.Kind.TEXT,
        created_at__gte=start,
        created_at__lt=end,
    ).exclude(text="")
    if not redo:
        queryset = queryset.filter(intent="")
    return queryset.order_by("id")


def analysis_backfill(
    *,
    org,
    start: datetime,
    end: datetime,
    mode: str | None = None,
    redo: bool = False,
    batch_size: int = 100,
    progress: Callable[[int, int], None] | None = None,
    message_ids: list[int] | None = None,
) -> BackfillResult:
    """Analyse the organisation's customer text messages created in [start, end) that have no
    intent yet (all of them with ``redo``); see the module docstring. The worker threads only
    make the provider calls; rows (results, call log, ledger) are written here."""
    from apps.integrations.clients.ai import analyze_intent, analyze_sentiment, batch
    from apps.integrations.models import AIApp
    from apps.integrations.services import ai_client_for, call_log_recorder

    mode = mode or ai_settings.analysis_mode(org)
    if mode == ai_settings.ANALYSIS_OFF:
        mode = ai_settings.ANALYSIS_INTENT_SENTIMENT  # an explicit backfill means "analyse"
    reply_app = _app_for(org.pk, AIApp.Purpose.REPLY, None)
    intent_app = _app_for(org.pk, AIApp.Purpose.INTENT, reply_app)
    sentiment_app = _app_for(org.pk, AIApp.Purpose.SENTIMENT, reply_app)
    if intent_app is None:
        return BackfillResult()
    recorders = []

    def client(app):
        recorder = call_log_recorder(org_id=org.pk, ai_app_id=app.pk, buffered=True)
        recorders.append(recorder)
        return ai_client_for(app, recorder=recorder)

    intent_client = client(intent_app)
    sentiment_client = client(sentiment_app) if sentiment_app is not None else None
    with_sentiment = mode == ai_settings.ANALYSIS_INTENT_SENTIMENT and sentiment_client

    queryset = analysis_backfill_queryset(org=org, start=start, end=end, redo=redo)
    if message_ids is not None:
        queryset = queryset.filter(pk__in=message_ids)
    ids = list(queryset.values_list("id", flat=True))
    result = BackfillResult(total=len(ids))
    if progress:
        progress(0, result.total)
    concurrency = max(1, min(10, settings.CONVERSATION_ANALYSIS_BATCH_CONCURRENCY))

    def call(row):
        _id, text, _conversation_id = row
        intent = analyze_intent(intent_client, text)
        sentiment = analyze_sentiment(sentiment_client, text) if with_sentiment else None
        return intent, sentiment

    for offset in range(0, len(ids), batch_size):
        rows = list(
            Message.objects.filter(org=org, pk__in=ids[offset : offset + batch_size])
            .order_by("id")
            .values_list("id", "text", "conversation_id")
        )
        outcomes = batch(call, rows, concurrency=concurrency)
        for (message_id, _text, conversation_id), outcome in zip(rows, outcomes, strict=True):
            if not isinstance(outcome, tuple):
                result.failed += 1
                continue
            intent, sentiment = outcome
            fields: dict[str, Any] = {"intent": intent.intent[:32]}
            _meter(org, intent_app, "intent", message_id, intent.chat, conversation_id)
            if sentiment is not None:
                if not sentiment.fallback:
                    fields["sentiment"] = sentiment.sentiment[:16]
                    fields["sentiment_score"] = sentiment.score
                _meter(org, sentiment_app, "sentiment", message_id, sentiment.chat, conversation_id)
            Message.objects.filter(org=org, pk=message_id).update(
                **fields, updated_at=timezone.now()
            )
            result.analysed += 1
        for recorder in recorders:
            recorder.flush()
        if progress:
            progress(result.analysed + result.failed, result.total)
    return result
