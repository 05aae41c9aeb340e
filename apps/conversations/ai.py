"""The AI turn: answer a conversation's unanswered customer messages once.

``schedule_turn`` enqueues ``ai_turn_run`` with the merge window as countdown. A turn:

1. takes the conversation's Redis lock (one turn per conversation across all workers; the lock
   expires after ``CONVERSATION_AI_LOCK_SECONDS`` so a killed worker cannot block the chat).
   A busy lock re-schedules the task after ``CONVERSATION_AI_BUSY_RETRY_SECONDS``;
2. reads the customer messages that ask for an answer (``triggers_ai``) newer than
   ``ai_answered_message_id``; if the newest is younger than the merge window it re-schedules
   itself for the rest of the window, so quick consecutive messages become one turn;
3. gets or creates the ``AITurn`` keyed by the newest of them: a turn that already finished is
   never run again (redelivered task, retried webhook, second worker);
4. optional intent / sentiment analysis (strongly negative -> handoff), budget ``reserve``
   (blocked -> handoff), the AI call with context (the provider session for FastGPT/Dify, the
   last N messages for OpenAI-compatible apps, names as variables; streamed partials pushed as
   ``ai_processing_status``), retried per ``CONVERSATION_AI_MAX_ATTEMPTS`` (the client retries
   transient errors inside each attempt) and then a handoff, ``settle``;
5. in one transaction: the answer split into WeChat-sized chunks queued in order through the
   outbound pipeline (idempotency keys ``ai:<turn>:<n>``), the turn marked answered and the
   conversation's pointer moved. A worker killed before this commit leaves the turn running;
   the next attempt redoes the call and the keys make a second queueing impossible.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.conversations.models import AITurn, Conversation, Message
from apps.conversations.services import (
    HandoffReason,
    _handoff_locked,
    _locked,
    _maybe_resume_ai,
    push_new_message,
)
from apps.core import realtime
from apps.core.locks import RedisLock
from apps.core.redis import redis_key

logger = logging.getLogger(__name__)


# -- scheduling ------------------------------------------------------------------------------


def schedule_turn(*, org_id: int, conversation_id: int, countdown: float | None = None) -> bool:
    """Enqueue an AI turn after ``countdown`` seconds (default: the merge window). Under eager
    Celery (unit tests) a delayed run is not executed inline (it would recurse); the recovery
    task or the test runs it."""
    from apps.conversations.tasks import ai_turn_run as ai_turn_task

    if countdown is None:
        countdown = settings.CONVERSATION_MERGE_WINDOW_SECONDS
    if settings.CELERY_TASK_ALWAYS_EAGER and countdown > 0:
        return False
    try:
        ai_turn_task.apply_async(
            kwargs={"org_id": org_id, "conversation_id": conversation_id},
            countdown=max(0.0, countdown),
        )
    except Exception:  # noqa: BLE001 - the recovery task schedules unanswered messages again
        logger.exception("ai: scheduling a turn of conversation %s failed", conversation_id)
        return False
    return True


def _lock_for(conversation_id: int) -> RedisLock:
    return RedisLock(
        redis_key("conversations", "ai-turn", conversation_id),
        ttl=settings.CONVERSATION_AI_LOCK_SECONDS,
    )


def pending_messages(conversation: Conversation):
    return Message.objects.filter(
        conversation=conversation,
        direction=Message.Direction.INBOUND,
        triggers_ai=True,
        id__gt=conversation.ai_answered_message_id,
    ).order_by("id")


def ai_turn_run(*, org_id: int, conversation_id: int) -> str:
    """Run the conversation's AI turn if one is due (see the module docstring). Returns an
    outcome: answered, handed_off, duplicate, nothing, human, merging, busy, missing, taken_over.
    """
    lock = _lock_for(conversation_id)
    if not lock.acquire():
        schedule_turn(
            org_id=org_id,
            conversation_id=conversation_id,
            countdown=settings.CONVERSATION_AI_BUSY_RETRY_SECONDS,
        )
        return "busy"
    try:
        outcome = _run_locked(org_id, conversation_id, lock)
    finally:
        lock.release()
    if outcome in ("answered", "duplicate", "taken_over"):
        conversation = Conversation.objects.filter(org_id=org_id, pk=conversation_id).first()
        if (
            conversation is not None
            and conversation.mode == Conversation.Mode.AI
            and pending_messages(conversation).exists()
        ):
            # Messages arrived during the turn: answer them in the next one.
            schedule_turn(org_id=org_id, conversation_id=conversation_id)
    return outcome


# -- the turn --------------------------------------------------------------------------------


def _status(conversation: Conversation, status: str, **extra: Any) -> None:
    realtime.push(
        "ai_processing_status",
        {"conversation_id": conversation.pk, "status": status, **extra},
        groups=[
            realtime.group_for_conversation(conversation.org_id, conversation.pk),
            realtime.group_for_conversations(conversation.org_id),
        ],
    )


def _ai_app_for(conversation: Conversation):
    from apps.integrations.models import AIApp
    from apps.integrations.selectors import ai_app_default, ai_app_get

    for app_id in (
        conversation.ai_app_id,
        getattr(conversation.account, "default_ai_app_id", None),
    ):
        if app_id:
            app = ai_app_get(org=conversation.org_id, ai_app_id=app_id)
            if app is not None and app.enabled:
                return app
    return ai_app_default(org=conversation.org_id, purpose=AIApp.Purpose.REPLY)


def _analysis_enabled(conversation: Conversation) -> bool:
    org_settings = getattr(conversation.org, "settings", None) or {}
    value = org_settings.get("ai_analysis")
    return settings.CONVERSATION_AI_ANALYSIS_ENABLED if value is None else bool(value)


def _finish_turn(turn: AITurn, status: str, **fields: Any) -> None:
    fields.update(status=status, finished_at=timezone.now(), updated_at=timezone.now())
    AITurn.objects.filter(pk=turn.pk).update(**fields)


def _handoff(conversation: Conversation, turn: AITurn, last: Message, reason: str, error: str = ""):
    """Hand the chat to a person; the customer's messages stay (unanswered by the AI)."""
    with transaction.atomic():
        locked = _locked(conversation.org_id, conversation.pk)
        if locked.mode == Conversation.Mode.AI:
            _handoff_locked(locked, reason=reason)
        if locked.ai_answered_message_id < last.pk:
            locked.ai_answered_message_id = last.pk
            locked.save(update_fields=["ai_answered_message_id", "updated_at"])
        _finish_turn(turn, AITurn.Status.HANDED_OFF, error=(error or reason)[:500])
    _status(conversation, "handed_off", reason=reason)
    return "handed_off"


def _run_locked(org_id: int, conversation_id: int, lock: RedisLock) -> str:
    conversation = (
        Conversation.objects.select_related("org", "account", "account__org", "contact")
        .filter(org_id=org_id, pk=conversation_id)
        .first()
    )
    if conversation is None or conversation.account is None or conversation.contact is None:
        return "missing"
    now = timezone.now()
    if _maybe_resume_ai(conversation, now):
        conversation.save(update_fields=["mode", "ai_paused_until", "handoff_reason", "updated_at"])
    if conversation.mode != Conversation.Mode.AI:
        return "human"
    pending = list(pending_messages(conversation))
    if not pending:
        return "nothing"
    last = pending[-1]
    wait = settings.CONVERSATION_MERGE_WINDOW_SECONDS - (now - last.created_at).total_seconds()
    if wait > 0.01:
        schedule_turn(org_id=org_id, conversation_id=conversation_id, countdown=wait)
        return "merging"
    turn, _created = AITurn.objects.get_or_create(
        conversation=conversation,
        last_message=last,
        defaults={"org_id": org_id, "question": _question(conversation, pending)[:10000]},
    )
    if turn.status != AITurn.Status.RUNNING:
        Conversation.objects.filter(pk=conversation.pk, ai_answered_message_id__lt=last.pk).update(
            ai_answered_message_id=last.pk
        )
        return "duplicate"
    AITurn.objects.filter(pk=turn.pk).update(attempts=turn.attempts + 1)
    ai_app = _ai_app_for(conversation)
    if ai_app is None:
        return _handoff(conversation, turn, last, HandoffReason.NO_AI_APP)
    AITurn.objects.filter(pk=turn.pk).update(ai_app=ai_app)
    _status(conversation, "thinking", turn_id=turn.pk)

    if _analysis_enabled(conversation):
        negative = _analyse(conversation, ai_app, pending)
        if negative:
            return _handoff(conversation, turn, last, HandoffReason.SENTIMENT)
    lock.extend()

    from apps.billing import services as billing

    messages = _context(conversation, ai_app, pending)
    model = ai_app.model or ai_app.app_id or ai_app.provider
    try:
        reservation = billing.reserve(
            org=conversation.org,
            provider=ai_app.provider,
            model=model,
            kind="chat",
            estimated_input_tokens=billing.estimate_tokens(messages),
            estimated_output_tokens=settings.CONVERSATION_AI_RESERVE_OUTPUT_TOKENS,
            request_id=f"ai-turn-{turn.pk}",
            wechat_account_id=conversation.account_id,
            conversation_id=conversation.pk,
        )
    except billing.BudgetExceeded as exc:
        return _handoff(conversation, turn, last, HandoffReason.BUDGET, str(exc))

    result, error = _call_with_attempts(conversation, ai_app, messages, lock)
    if result is None or not result.text.strip():
        billing.release(reservation=reservation)
        return _handoff(
            conversation, turn, last, HandoffReason.AI_FAILED, error or "empty AI answer"
        )
    try:
        ledger = billing.settle(
            reservation=reservation,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            provider_cost=result.provider_cost,
            provider_currency=result.currency or "",
        )
        cost = ledger.cost
    except Exception:  # noqa: BLE001 - the answer exists; billing can be reconciled
        logger.exception("ai: settling turn %s failed", turn.pk)
        cost = None
    return _deliver(conversation, turn, last, ai_app, result, cost)


def _deliver(conversation, turn, last, ai_app, result, cost) -> str:
    from apps.wechat_accounts.services import send

    chunks = split_reply(result.text, settings.CONVERSATION_REPLY_CHUNK_CHARS)
    now = timezone.now()
    with transaction.atomic():
        locked = _locked(conversation.org_id, conversation.pk)
        if locked.mode != Conversation.Mode.AI:
            # A person took over while the AI was thinking: their word wins.
            _finish_turn(turn, AITurn.Status.SKIPPED, answer=result.text, error="taken over")
            return "taken_over"
        at_wxids = None
        if conversation.contact.kind == "group" and last.sender_wxid:
            at_wxids = [last.sender_wxid]
            name = last.sender_name or last.sender_wxid
            chunks[0] = f"@{name}\u2005{chunks[0]}"
        for index, chunk in enumerate(chunks):
            message = send(
                org=conversation.org,
                account=conversation.account,
                to_wxid=conversation.contact.wxid,
                text=chunk,
                sender_kind=Message.SenderKind.AI,
                urgent=True,
                client_msg_id=f"ai:{turn.pk}:{index}",
                conversation=locked,
                at_wxids=at_wxids if index == 0 else None,
            )
            fields = {"ai_app": ai_app, "ai_latency_ms": result.latency_ms}
            if index == 0:
                fields.update(
                    ai_input_tokens=result.input_tokens,
                    ai_output_tokens=result.output_tokens,
                    ai_cost=cost,
                )
            Message.objects.filter(pk=message.pk).update(**fields)
            for name, value in fields.items():
                setattr(message, name, value)
            push_new_message(message, locked)
        locked.ai_answered_message_id = max(locked.ai_answered_message_id, last.pk)
        if result.provider_conversation_id:
            locked.ai_conversation_id = result.provider_conversation_id[:250]
        locked.ai_last_activity_at = now
        locked.save(
            update_fields=[
                "ai_answered_message_id",
                "ai_conversation_id",
                "ai_last_activity_at",
                "updated_at",
            ]
        )
        _finish_turn(
            turn,
            AITurn.Status.ANSWERED,
            answer=result.text,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost=cost,
            latency_ms=result.latency_ms,
            error="",
        )
        data = {"conversation_id": conversation.pk, "status": "done", "turn_id": turn.pk}
        transaction.on_commit(
            lambda: realtime.push(
                "ai_processing_status",
                data,
                groups=[
                    realtime.group_for_conversation(conversation.org_id, conversation.pk),
                    realtime.group_for_conversations(conversation.org_id),
                ],
            )
        )
    return "answered"


# -- context ---------------------------------------------------------------------------------


def _speaker(message: Message) -> str:
    return message.sender_name or message.sender_wxid


def _question(conversation: Conversation, pending: list[Message]) -> str:
    is_group = conversation.contact.kind == "group"
    lines = []
    for message in pending:
        text = message.display_text
        if is_group and _speaker(message):
            text = f"{_speaker(message)}: {text}"
        lines.append(text)
    return "\n".join(lines)


def _context(conversation: Conversation, ai_app, pending: list[Message]) -> list[dict]:
    """OpenAI-style messages: history (OpenAI-compatible apps only) + the merged question."""
    messages: list[dict] = []
    if ai_app.provider == "openai":
        limit = settings.CONVERSATION_AI_CONTEXT_MESSAGES
        history = list(
            Message.objects.filter(conversation=conversation, id__lt=pending[0].pk)
            .exclude(sender_kind=Message.SenderKind.SYSTEM)
            .exclude(status=Message.Status.FAILED)
            .order_by("-id")[:limit]
        )
        for message in reversed(history):
            role = "user" if message.direction == Message.Direction.INBOUND else "assistant"
            messages.append({"role": role, "content": message.display_text})
    messages.append({"role": "user", "content": _question(conversation, pending)})
    return messages


def _variables(conversation: Conversation, pending: list[Message]) -> dict:
    contact = conversation.contact
    is_group = contact.kind == "group"
    last = pending[-1]
    return {
        "customer_name": (_speaker(last) if is_group else contact.display_name) or "",
        "group_name": contact.display_name if is_group else "",
        "account_name": conversation.account.name,
    }


def _session_id(conversation: Conversation, ai_app) -> str | None:
    """The provider conversation to continue, or None / a new FastGPT chatId."""
    if ai_app.provider == "openai":
        return None
    state = conversation.ai_session_state()
    if conversation.ai_conversation_id and state != Conversation.AISession.EXPIRED:
        return conversation.ai_conversation_id
    if ai_app.provider == "fastgpt":  # caller-chosen, unique per app, < 250 chars
        return f"sa-{conversation.org_id}-{conversation.pk}-{int(time.time())}"
    return None


def _call_with_attempts(conversation, ai_app, messages, lock):
    from apps.integrations import services as integrations
    from apps.integrations.clients import errors as client_errors

    user = f"{conversation.org_id}:{conversation.account_id}:{conversation.contact.wxid}"
    pending = list(pending_messages(conversation))
    variables = _variables(conversation, pending) if pending else {}
    session = _session_id(conversation, ai_app)
    error = ""
    for attempt in range(1, settings.CONVERSATION_AI_MAX_ATTEMPTS + 1):
        lock.extend()
        try:
            if ai_app.streaming:
                result = _stream(conversation, ai_app, messages, session, user, variables)
            else:
                result = integrations.ai_chat(
                    ai_app=ai_app,
                    messages=messages,
                    conversation_id=session,
                    user=user,
                    variables=variables,
                )
            if ai_app.provider == "fastgpt" and not result.provider_conversation_id and session:
                from dataclasses import replace

                result = replace(result, provider_conversation_id=session)
            return result, ""
        except client_errors.ConversationNotFound:
            session = _session_id_new(conversation, ai_app)
            error = "provider conversation not found; started a new one"
        except client_errors.IntegrationError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            logger.warning(
                "ai: conversation %s attempt %d failed: %s", conversation.pk, attempt, error
            )
            retry = exc.retryable or isinstance(exc, client_errors.UpstreamError)
            if not retry:
                break
        except Exception as exc:  # noqa: BLE001 - e.g. the app was disabled meanwhile
            error = f"{type(exc).__name__}: {exc}"[:500]
            logger.exception("ai: conversation %s attempt %d crashed", conversation.pk, attempt)
            break
    _status(conversation, "failed", error=error[:200])
    return None, error


def _session_id_new(conversation: Conversation, ai_app) -> str | None:
    if ai_app.provider == "fastgpt":
        return f"sa-{conversation.org_id}-{conversation.pk}-{int(time.time() * 1000)}"
    return None


def _stream(conversation, ai_app, messages, session, user, variables):
    from apps.integrations import services as integrations
    from apps.integrations.clients.ai import ChatResult, TextReplaced

    text = ""
    last_push = 0.0
    result = None
    stream: Iterator = integrations.ai_chat_stream(
        ai_app=ai_app, messages=messages, conversation_id=session, user=user, variables=variables
    )
    for item in stream:
        if isinstance(item, ChatResult):
            result = item
            break
        text = str(item) if isinstance(item, TextReplaced) else text + item
        now = time.monotonic()
        if now - last_push >= settings.CONVERSATION_STREAM_PUSH_INTERVAL:
            last_push = now
            _status(conversation, "streaming", text=text)
    if result is None:
        from apps.integrations.clients.errors import StreamBroken

        raise StreamBroken("stream ended without a result", partial_text=text)
    return result


# -- analysis --------------------------------------------------------------------------------


def _analyse(conversation: Conversation, reply_app, pending: list[Message]) -> bool:
    """Record intent and sentiment on the newest customer message; True when the sentiment is
    strongly negative. Failures are logged and never block the answer."""
    from apps.integrations.clients.ai import analyze_intent, analyze_sentiment
    from apps.integrations.models import AIApp
    from apps.integrations.selectors import ai_app_default
    from apps.integrations.services import ai_client_for

    text = "\n".join(m.display_text for m in pending)
    last = pending[-1]
    fields: dict[str, Any] = {}
    try:
        app = ai_app_default(org=conversation.org_id, purpose=AIApp.Purpose.INTENT) or reply_app
        fields["intent"] = analyze_intent(ai_client_for(app), text).intent[:32]
    except Exception:  # noqa: BLE001
        logger.warning("ai: intent analysis failed for conversation %s", conversation.pk)
    try:
        app = ai_app_default(org=conversation.org_id, purpose=AIApp.Purpose.SENTIMENT) or reply_app
        sentiment = analyze_sentiment(ai_client_for(app), text)
        fields["sentiment"] = sentiment.sentiment[:16]
        fields["sentiment_score"] = sentiment.score
    except Exception:  # noqa: BLE001
        logger.warning("ai: sentiment analysis failed for conversation %s", conversation.pk)
        sentiment = None
    if fields:
        Message.objects.filter(pk=last.pk).update(**fields, updated_at=timezone.now())
    return (
        sentiment is not None
        and not sentiment.fallback
        and sentiment.score <= settings.CONVERSATION_HANDOFF_SENTIMENT_SCORE
    )


# -- splitting -------------------------------------------------------------------------------

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;.\n])")


def split_reply(text: str, limit: int) -> list[str]:
    """Split an answer into messages of at most ``limit`` characters, at paragraph, then line,
    then sentence boundaries, cutting hard only inside an over-long sentence. Order is kept."""
    text = (text or "").strip()
    limit = max(1, int(limit))
    if len(text) <= limit:
        return [text]
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        for sentence in _SENTENCE_END.split(paragraph):
            while len(sentence) > limit:
                pieces.append(sentence[:limit])
                sentence = sentence[limit:]
            if sentence:
                pieces.append(sentence)
        pieces.append("\n\n")
    chunks: list[str] = []
    current = ""
    for piece in pieces:
        if len(current) + len(piece) > limit:
            if current.strip():
                chunks.append(current.strip())
            current = piece.lstrip() if piece != "\n\n" else ""
        else:
            current += piece
    if current.strip():
        chunks.append(current.strip())
    return chunks or [text[:limit]]


def conversations_recover_ai(*, now=None, limit: int = 500) -> int:
    """Schedule a turn for AI conversations whose triggering customer messages stayed
    unanswered past ``CONVERSATION_AI_RECOVER_SECONDS`` (a lost task or a killed worker)."""
    from datetime import timedelta

    from django.db.models import Exists, OuterRef

    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.CONVERSATION_AI_RECOVER_SECONDS)
    waiting = Message.objects.filter(
        conversation=OuterRef("pk"),
        direction=Message.Direction.INBOUND,
        triggers_ai=True,
        id__gt=OuterRef("ai_answered_message_id"),
        created_at__lt=cutoff,
    )
    rows = list(
        Conversation.objects.filter(mode=Conversation.Mode.AI)
        .filter(Exists(waiting))
        .values_list("org_id", "id")[:limit]
    )
    for org_id, conversation_id in rows:
        schedule_turn(org_id=org_id, conversation_id=conversation_id, countdown=0)
    return len(rows)
