"""The AI turn: answer a conversation's unanswered customer messages once.

``schedule_turn`` enqueues ``ai_turn_run`` with the merge window as countdown. A turn:

1. takes the conversation's Redis lock (one turn per conversation across all workers; a short
   lock renewed while the turn runs, so a killed worker's lock expires after
   ``CONVERSATION_AI_LOCK_SECONDS``; ``turn_recovery``). A busy lock re-schedules the task
   after ``CONVERSATION_AI_BUSY_RETRY_SECONDS``;
2. reads the customer messages that ask for an answer (``triggers_ai``) newer than
   ``ai_answered_message_id``. In a private chat they are answered together; in a group only
   the oldest asker's consecutive messages are (each member gets their own answer, in order,
   @-mentioned by display name, looked up on first sight: ``group_names``). If the newest is
   younger than the merge window the turn re-schedules itself for the rest of the window;
3. gets or creates the ``AITurn`` keyed by the newest of them: a turn that already finished is
   never run again (redelivered task, retried webhook, second worker);
4. reply mode (``reply_mode_for``: the conversation's override, else the account's): ``off``
   answers nothing; intent / sentiment analysis by the organisation's mode (strongly negative
   -> handoff, ``analysis``); the AI call with failover over the conversation's ordered app
   list (``failover``: per-app retries with backoff, a shared circuit breaker, one budget
   reservation and one ledger row per app tried; a handoff only when every app failed), with
   context: the provider session per conversation / group member / app (``sessions``) for
   FastGPT and Dify, the last N messages for OpenAI-compatible apps; streamed partials pushed as
   ``ai_processing_status``;
5. in one transaction: ``auto`` queues the answer in WeChat-sized chunks through the outbound
   pipeline (idempotency keys ``ai:<turn>:<n>``); ``draft`` stores a ``Draft`` for an agent
   (``drafts``); the turn records the app that answered and every app tried, and the
   conversation's pointer moves. A worker killed before this commit leaves the turn running
   past its lease (``AITurn.lease_until``); the recovery re-queues it (``turn_recovery``), the
   next attempt redoes the call and the keys make a second queueing impossible.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from apps.conversations import failover, group_names, sessions
from apps.conversations.models import AITurn, Conversation, Message
from apps.conversations.outbound.queue import inline_first_attempt
from apps.conversations.services import (
    HandoffReason,
    conversation_ai_resume_due,
    conversation_handoff_locked,
    conversation_locked,
)
from apps.conversations.turn_recovery import renewing, turn_lease_renew
from apps.core import realtime
from apps.core.locks import RedisLock
from apps.core.redis import get_redis, redis_key
from apps.core.stages import stage_observe, stage_observe_since
from apps.integrations.clients import errors as client_errors

logger = logging.getLogger(__name__)

# Appended to the AI's input (not shown to anyone) when the customer's text was cut.
AI_INPUT_CUT_NOTE = "[The customer's text was cut: the first %(kept)d of %(total)d characters.]"


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
    # Marked before it is sent: the task may start (and clear the mark) before apply_async
    # returns.
    _mark_queued(conversation_id, countdown)
    try:
        ai_turn_task.apply_async(
            kwargs={"org_id": org_id, "conversation_id": conversation_id},
            countdown=max(0.0, countdown),
        )
    except Exception:  # noqa: BLE001 - the recovery task schedules unanswered messages again
        logger.exception("ai: scheduling a turn of conversation %s failed", conversation_id)
        _clear_queued(conversation_id)
        return False
    return True


def _queued_key(conversation_id: int) -> str:
    return redis_key("conversations", "ai-turn-queued", conversation_id)


def _mark_queued(conversation_id: int, countdown: float) -> None:
    """A turn task is on the queue, due in ``countdown``: the recovery leaves the conversation
    alone until ``CONVERSATION_AI_RECOVER_SECONDS`` after that (a backlog is not stuck; a task
    lost with a killed worker holding it is)."""
    ttl_ms = int((max(0.0, countdown) + settings.CONVERSATION_AI_RECOVER_SECONDS) * 1000)
    try:
        get_redis().set(_queued_key(conversation_id), "1", px=max(1, ttl_ms))
    except Exception:  # noqa: BLE001 - without the mark the recovery may only schedule twice
        logger.warning("ai: marking the turn of conversation %s queued failed", conversation_id)


def _clear_queued(conversation_id: int) -> None:
    try:
        get_redis().delete(_queued_key(conversation_id))
    except Exception:  # noqa: BLE001 - the mark expires by itself
        logger.warning("ai: clearing the queued mark of conversation %s failed", conversation_id)


def _turn_pending_or_running(conversation_ids: list[int]) -> set[int]:
    """The conversations with a turn task on the queue (not overdue) or a turn running."""
    if not conversation_ids:
        return set()
    client = get_redis()
    pipe = client.pipeline(transaction=False)
    for conversation_id in conversation_ids:
        pipe.exists(_queued_key(conversation_id), _lock_for(conversation_id, client).key)
    return {cid for cid, n in zip(conversation_ids, pipe.execute(), strict=True) if n}


def _lock_for(conversation_id: int, client=None) -> RedisLock:
    return RedisLock(
        redis_key("conversations", "ai-turn", conversation_id),
        ttl=settings.CONVERSATION_AI_LOCK_SECONDS,
        client=client,
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
    outcome: answered, drafted, off, handed_off, duplicate, nothing, human, merging, busy,
    missing, taken_over.
    """
    lock = _lock_for(conversation_id)
    if not lock.acquire():
        schedule_turn(
            org_id=org_id,
            conversation_id=conversation_id,
            countdown=settings.CONVERSATION_AI_BUSY_RETRY_SECONDS,
        )
        return "busy"
    _clear_queued(conversation_id)  # off the queue: the lock and the turn's lease cover it now
    try:
        # A reply due at once is sent from here after its commit (outbound.inline_first_attempt).
        with renewing(lock), inline_first_attempt():  # the lock lives as long as this worker
            outcome = _run_locked(org_id, conversation_id, lock)
    finally:
        lock.release()
    if outcome in ("answered", "drafted", "off", "duplicate", "taken_over"):
        # Messages arrived during the turn (one statement: the conversation's mode and pointer
        # are joined): answer them in the next one.
        arrived = Message.objects.filter(
            org_id=org_id,
            conversation_id=conversation_id,
            conversation__mode=Conversation.Mode.AI,
            direction=Message.Direction.INBOUND,
            triggers_ai=True,
            id__gt=F("conversation__ai_answered_message_id"),
        )
        if arrived.exists():
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


def reply_mode_for(conversation: Conversation) -> str:
    """auto / draft / off: the conversation's override, else its account's mode."""
    from apps.wechat_accounts.models import ReplyMode

    if conversation.reply_mode in ReplyMode.values:
        return conversation.reply_mode
    mode = getattr(conversation.account, "reply_mode", "") or ReplyMode.AUTO
    return mode if mode in ReplyMode.values else ReplyMode.AUTO


def _finish_turn(turn: AITurn, status: str, **fields: Any) -> None:
    fields.update(
        status=status, finished_at=timezone.now(), updated_at=timezone.now(), lease_until=None
    )
    AITurn.objects.filter(org_id=turn.org_id, pk=turn.pk).update(**fields)
    took = (fields["finished_at"] - turn.created_at).total_seconds()
    transaction.on_commit(lambda: stage_observe("ai", took))


def _handoff(
    conversation: Conversation, turn: AITurn, last: Message, reason: str, error: str = "", **extra
):
    """Hand the chat to a person; the customer's messages stay (unanswered by the AI)."""
    with transaction.atomic():
        locked = conversation_locked(conversation.org_id, conversation.pk)
        if locked.mode == Conversation.Mode.AI:
            conversation_handoff_locked(locked, reason=reason)
        if locked.ai_answered_message_id < last.pk:
            locked.ai_answered_message_id = last.pk
            locked.save(update_fields=["ai_answered_message_id", "updated_at"])
        _finish_turn(turn, AITurn.Status.HANDED_OFF, error=(error or reason)[:500], **extra)
    _status(conversation, "handed_off", reason=reason)
    return "handed_off"


def _batch(conversation: Conversation, pending: list[Message]) -> tuple[list[Message], bool]:
    """The messages this turn answers. In groups only the oldest asker's consecutive messages
    (different members are never merged: each gets their own answer, in order); the flag says
    whether other pending messages follow (then there is nothing to wait for)."""
    if conversation.contact.kind != "group":
        return pending, False
    sender = pending[0].sender_wxid
    batch = []
    for message in pending:
        if message.sender_wxid != sender:
            return batch, True
        batch.append(message)
    return batch, False


def _turn_get_or_create(
    conversation: Conversation, last: Message, **fields: Any
) -> tuple[AITurn, bool]:
    """The turn keyed by (conversation, last message), inserted first: a new turn (the usual
    case) costs one statement; the unique pair finds the existing one of a re-run."""
    try:
        with transaction.atomic():
            return AITurn.objects.create(
                conversation=conversation, last_message=last, **fields
            ), True
    except IntegrityError:
        turn = AITurn.objects.filter(
            org_id=conversation.org_id, conversation=conversation, last_message=last
        ).first()
        if turn is None:  # another constraint failed: not a re-run
            raise
        return turn, False


_TURN_RELATED = ("org", "account", "account__org", "contact")


def _conversation_and_pending(
    org_id: int, conversation_id: int
) -> tuple[Conversation | None, list[Message]]:
    """The conversation (with its org, account and contact) and its pending messages, oldest
    first: one statement when messages are pending (the conversation is joined to them), the
    conversation alone otherwise."""
    pending = list(
        Message.objects.select_related(*(f"conversation__{name}" for name in _TURN_RELATED))
        .filter(
            org_id=org_id,
            conversation_id=conversation_id,
            conversation__org_id=org_id,
            direction=Message.Direction.INBOUND,
            triggers_ai=True,
            id__gt=F("conversation__ai_answered_message_id"),
        )
        .order_by("id")
    )
    if not pending:
        conversation = (
            Conversation.objects.select_related(*_TURN_RELATED)
            .filter(org_id=org_id, pk=conversation_id)
            .first()
        )
        return conversation, []
    conversation = pending[0].conversation
    for message in pending:
        message.conversation = conversation  # one instance, as pending_messages() would give
    return conversation, pending


def _run_locked(org_id: int, conversation_id: int, lock: RedisLock) -> str:
    conversation, pending = _conversation_and_pending(org_id, conversation_id)
    if conversation is None or conversation.account is None or conversation.contact is None:
        return "missing"
    now = timezone.now()
    if conversation_ai_resume_due(conversation, now):
        conversation.save(update_fields=["mode", "ai_paused_until", "handoff_reason", "updated_at"])
    if conversation.mode != Conversation.Mode.AI:
        return "human"
    if not pending:
        return "nothing"
    batch, more = _batch(conversation, pending)
    last = batch[-1]
    wait = settings.CONVERSATION_MERGE_WINDOW_SECONDS - (now - last.created_at).total_seconds()
    if wait > 0.01 and not more:
        schedule_turn(org_id=org_id, conversation_id=conversation_id, countdown=wait)
        return "merging"
    is_group = conversation.contact.kind == "group"
    member_wxid = last.sender_wxid[:128] if is_group else ""
    # Mode and apps first (reads only), so a new turn is inserted with its lease, attempt and
    # app in one statement.
    mode = reply_mode_for(conversation)
    apps = [] if mode == "off" else failover.ai_apps_for(conversation)
    lease = {
        "attempts": 1,
        "lease_until": now + timedelta(seconds=settings.CONVERSATION_AI_TURN_LEASE_SECONDS),
    }
    if apps:
        lease["ai_app"] = apps[0]
    turn, created = _turn_get_or_create(
        conversation,
        last,
        org_id=org_id,
        question=_question(conversation, batch)[:10000],
        member_wxid=member_wxid,
        **lease,
    )
    if created:
        stage_observe_since("queue_ai", last.created_at)
    if turn.status != AITurn.Status.RUNNING:
        Conversation.objects.filter(pk=conversation.pk, ai_answered_message_id__lt=last.pk).update(
            ai_answered_message_id=last.pk
        )
        return "duplicate"
    if not created:  # a re-run (worker killed, task redelivered): one more attempt
        lease["attempts"] = turn.attempts + 1
        AITurn.objects.filter(org_id=turn.org_id, pk=turn.pk).update(**lease)
    renewed_at = [time.monotonic()]

    def heartbeat() -> None:
        lock.extend()
        # The lease was just set: renew it only once a third of it has run out.
        if time.monotonic() - renewed_at[0] >= settings.CONVERSATION_AI_TURN_LEASE_SECONDS / 3:
            turn_lease_renew(turn.pk)
            renewed_at[0] = time.monotonic()

    if mode == "off":
        Conversation.objects.filter(pk=conversation.pk, ai_answered_message_id__lt=last.pk).update(
            ai_answered_message_id=last.pk
        )
        _finish_turn(turn, AITurn.Status.SKIPPED, error="reply mode off")
        return "off"
    if not apps:
        return _handoff(conversation, turn, last, HandoffReason.NO_AI_APP)
    _status(conversation, "thinking", turn_id=turn.pk)

    member_name = ""
    if is_group and member_wxid:
        member_name = group_names.member_display_name(conversation, member_wxid, batch)
    if _analysis_hands_off(conversation, apps[0], batch):
        return _handoff(conversation, turn, last, HandoffReason.SENTIMENT)
    lock.extend()

    user = _provider_user(conversation, member_wxid)
    variables = _variables(conversation, batch, member_name)
    sessions_used: dict[int, str | None] = {}

    def build_messages(ai_app) -> list[dict]:
        return _context(conversation, ai_app, batch)

    def call(ai_app, messages):
        session = sessions.session_for(conversation, member_wxid=member_wxid, ai_app=ai_app)
        lock.extend()
        client = failover.app_client(ai_app)
        try:
            result = _call_app(conversation, ai_app, client, messages, session, user, variables)
        except client_errors.ConversationNotFound:
            # The provider forgot the session (Dify 404): start a new one, once.
            session = sessions.new_provider_session_id(
                conversation, ai_app=ai_app, member_wxid=member_wxid
            )
            result = _call_app(conversation, ai_app, client, messages, session, user, variables)
        if ai_app.provider == "fastgpt" and not result.provider_conversation_id and session:
            from dataclasses import replace

            result = replace(result, provider_conversation_id=session)
        sessions_used[ai_app.pk] = result.provider_conversation_id
        return result

    def on_failover(next_app, error: str) -> None:
        _status(conversation, "failover", turn_id=turn.pk, next_ai_app=next_app.name)

    outcome = failover.call_with_failover(
        conversation=conversation,
        turn=turn,
        apps=apps,
        build_messages=build_messages,
        call=call,
        on_failover=on_failover,
        heartbeat=heartbeat,
    )
    if outcome.busy:
        # Every slot of the organisation is taken: wait in the queue, never hand off.
        _status(conversation, "queued", turn_id=turn.pk)
        schedule_turn(
            org_id=org_id,
            conversation_id=conversation_id,
            countdown=settings.CONVERSATION_AI_BUSY_RETRY_SECONDS,
        )
        return "busy"
    record = {"failovers": outcome.failovers, "app_attempts": outcome.attempts}
    if outcome.budget_error:
        return _handoff(
            conversation, turn, last, HandoffReason.BUDGET, outcome.budget_error, **record
        )
    if outcome.result is None:
        _status(conversation, "failed", error=outcome.error[:200])
        return _handoff(
            conversation,
            turn,
            last,
            HandoffReason.AI_FAILED,
            outcome.error or "no AI app answered",
            **record,
        )
    sessions.session_touch(
        conversation,
        member_wxid=member_wxid,
        ai_app=outcome.ai_app,
        provider_conversation_id=sessions_used.get(outcome.ai_app.pk),
    )
    return _deliver(
        conversation,
        turn,
        last,
        outcome,
        mode=mode,
        member_wxid=member_wxid,
        member_name=member_name,
    )


def _provider_user(conversation: Conversation, member_wxid: str) -> str:
    """The provider's end-user id: stable per customer, per member in groups (Dify
    conversations belong to one ``user``)."""
    base = f"{conversation.org_id}:{conversation.account_id}:{conversation.contact.wxid}"
    return f"{base}:{member_wxid}" if member_wxid else base


def _call_app(conversation, ai_app, client, messages, session, user, variables):
    from apps.integrations import services as integrations

    if ai_app.streaming:
        last_push = [0.0]

        def partial(text: str) -> None:
            now = time.monotonic()
            if now - last_push[0] >= settings.CONVERSATION_STREAM_PUSH_INTERVAL:
                last_push[0] = now
                _status(conversation, "streaming", text=text)

        stream = integrations.ai_chat_stream(
            ai_app=ai_app,
            messages=messages,
            conversation_id=session,
            user=user,
            variables=variables,
            client=client,
        )
        return failover.stream_text(stream, partial)
    return integrations.ai_chat(
        ai_app=ai_app,
        messages=messages,
        conversation_id=session,
        user=user,
        variables=variables,
        client=client,
    )


def _deliver(conversation, turn, last, outcome, *, mode, member_wxid, member_name) -> str:
    from apps.conversations.drafts import draft_create_locked
    from apps.conversations.reply_send import send_reply

    result, ai_app, cost = outcome.result, outcome.ai_app, outcome.cost
    now = timezone.now()
    record = {
        "ai_app": ai_app,
        "failovers": outcome.failovers,
        "app_attempts": outcome.attempts,
    }
    with transaction.atomic():
        locked = conversation_locked(conversation.org_id, conversation.pk)
        locked.org = conversation.org  # read at the turn's start; the lock is the row's
        touched = ["ai_answered_message_id", "ai_conversation_id", "ai_last_activity_at"]
        if locked.mode != Conversation.Mode.AI:
            # A person took over while the AI was thinking: their word wins.
            _finish_turn(
                turn, AITurn.Status.SKIPPED, answer=result.text, error="taken over", **record
            )
            return "taken_over"
        if mode == "draft":
            draft_create_locked(
                conversation=locked,
                turn=turn,
                reply_to=last,
                ai_app=ai_app,
                text=result.text,
                mention_wxid=member_wxid,
                mention_name=member_name,
            )
            status = AITurn.Status.DRAFTED
        else:
            send_reply(
                conversation=locked,
                text=result.text,
                key_prefix=f"ai:{turn.pk}",
                sender_kind=Message.SenderKind.AI,
                mention_wxid=member_wxid,
                mention_name=member_name,
                ai_app=ai_app,
                message_fields={
                    "ai_latency_ms": result.latency_ms,
                    "ai_input_tokens": result.input_tokens,
                    "ai_output_tokens": result.output_tokens,
                    "ai_cost": cost,
                },
                touch_conversation=False,  # saved with the AI fields below, one UPDATE
            )
            touched.append("last_message_at")
            status = AITurn.Status.ANSWERED
        locked.ai_answered_message_id = max(locked.ai_answered_message_id, last.pk)
        if result.provider_conversation_id and not member_wxid:
            locked.ai_conversation_id = result.provider_conversation_id[:250]
        locked.ai_last_activity_at = now
        locked.save(update_fields=[*touched, "updated_at"])
        _finish_turn(
            turn,
            status,
            answer=result.text,
            input_tokens=result.input_tokens,
            output_tokens=result.output_tokens,
            cost=cost,
            latency_ms=result.latency_ms,
            error="",
            **record,
        )
        data = {
            "conversation_id": conversation.pk,
            "status": "drafted" if mode == "draft" else "done",
            "turn_id": turn.pk,
            "ai_app_id": ai_app.pk,
            "ai_app": ai_app.name,
            "failovers": outcome.failovers,
        }
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
    return "drafted" if mode == "draft" else "answered"


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
    return cap_input_text("\n".join(lines))


def cap_input_text(text: str) -> str:
    """At most ``CONVERSATION_AI_INPUT_MAX_CHARS`` of the customer's text go to the AI (a pasted
    novel would cost the budget and drown the answer); the cut is said in the text itself."""
    limit = int(settings.CONVERSATION_AI_INPUT_MAX_CHARS)
    if limit <= 0 or len(text) <= limit:
        return text
    logger.info("ai: customer text of %d characters cut to %d", len(text), limit)
    return text[:limit] + "\n" + AI_INPUT_CUT_NOTE % {"total": len(text), "kept": limit}


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


def _variables(conversation: Conversation, pending: list[Message], member_name: str = "") -> dict:
    contact = conversation.contact
    is_group = contact.kind == "group"
    last = pending[-1]
    return {
        "customer_name": (member_name or _speaker(last) if is_group else contact.display_name)
        or "",
        "group_name": contact.display_name if is_group else "",
        "account_name": conversation.account.name,
    }


def _analysis_hands_off(conversation: Conversation, reply_app, pending: list[Message]) -> bool:
    """Intent / sentiment of the newest customer message (by the organisation's analysis
    mode); True when the sentiment is at or below the organisation's handoff threshold."""
    from apps.conversations.analysis import analyse_inbound

    return analyse_inbound(conversation=conversation, reply_app=reply_app, messages=pending)


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
    unanswered past ``CONVERSATION_AI_RECOVER_SECONDS`` (a lost task or a killed worker), but
    not for one whose turn task is still on the queue or whose turn is running: re-scheduling
    a backlog only grows it (``_mark_queued``)."""
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
    busy = _turn_pending_or_running([conversation_id for _org_id, conversation_id in rows])
    rows = [(org_id, cid) for org_id, cid in rows if cid not in busy]
    for org_id, conversation_id in rows:
        schedule_turn(org_id=org_id, conversation_id=conversation_id, countdown=0)
    return len(rows)
