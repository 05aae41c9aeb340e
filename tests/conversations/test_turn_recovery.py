"""AI turns outliving their worker (issue 18): a turn left ``running`` past its lease is
re-queued, or closed with a reason; a live worker's turn is never touched; the conversation's
turn lock is short and renewed while the turn runs."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.db import OperationalError
from django.utils import timezone

from apps.conversations import ai, turn_recovery
from apps.conversations.models import AITurn, Conversation, Message
from apps.conversations.tasks import core_loop_recover
from apps.conversations.turn_recovery import ai_turns_recover
from apps.core.locks import RedisLock
from apps.core.redis import redis_key
from tests.conversations.helpers import deliver

pytestmark = pytest.mark.django_db


@pytest.fixture
def scheduled(monkeypatch):
    calls: list[dict] = []
    monkeypatch.setattr(ai, "schedule_turn", lambda **kwargs: calls.append(kwargs) or True)
    return calls


def _customer_says(account, gewe, capture, text: str, wxid: str = "wxid_heal01") -> Conversation:
    payload = gewe.build_text(from_wxid=wxid, text=text, to_account=account.device_id)
    deliver(account.connection, payload, capture)
    return Conversation.objects.get(contact__wxid=wxid)


def _later(seconds: float | None = None):
    from django.conf import settings

    return timezone.now() + timedelta(
        seconds=seconds or settings.CONVERSATION_AI_TURN_LEASE_SECONDS + 1
    )


def test_a_turn_that_died_in_a_deadlock_is_requeued_and_answered_once(
    org, account, reply_app, gewe, scheduled, monkeypatch, django_capture_on_commit_callbacks
):
    conversation = _customer_says(account, gewe, django_capture_on_commit_callbacks, "在吗")

    def deadlock(*args, **kwargs):
        raise OperationalError("deadlock detected")

    with monkeypatch.context() as patch:
        patch.setattr(ai, "_deliver", deadlock)
        with pytest.raises(OperationalError):
            ai.ai_turn_run(org_id=org.id, conversation_id=conversation.pk)
    turn = AITurn.objects.get()
    assert turn.status == AITurn.Status.RUNNING and turn.lease_until > timezone.now()
    assert ai_turns_recover() == {"requeued": 0, "closed": 0, "handed_off": 0}  # lease alive

    scheduled.clear()
    assert ai_turns_recover(now=_later())["requeued"] == 1
    assert [s["conversation_id"] for s in scheduled] == [conversation.pk]
    # Re-queued with a fresh lease: the next pass waits for that run.
    assert ai_turns_recover(now=_later())["requeued"] == 0

    assert ai.ai_turn_run(org_id=org.id, conversation_id=conversation.pk) == "answered"
    turn.refresh_from_db()
    assert turn.status == AITurn.Status.ANSWERED and turn.attempts == 2
    assert turn.lease_until is None
    assert Message.objects.filter(sender_kind=Message.SenderKind.AI).count() == 1
    assert ai_turns_recover(now=_later(3600)) == {"requeued": 0, "closed": 0, "handed_off": 0}


def test_a_turn_whose_worker_still_holds_the_conversation_lock_is_left_alone(
    org, account, reply_app, gewe, scheduled, django_capture_on_commit_callbacks
):
    conversation = _customer_says(account, gewe, django_capture_on_commit_callbacks, "慢")
    last = Message.objects.get(direction=Message.Direction.INBOUND)
    AITurn.objects.create(
        org=org, conversation=conversation, last_message=last, attempts=1, lease_until=_later(-60)
    )
    lock = ai._lock_for(conversation.pk)
    assert lock.acquire()  # a live worker, in a long AI call, renewing its lock
    try:
        assert ai_turns_recover()["requeued"] == 0
    finally:
        lock.release()
    assert ai_turns_recover()["requeued"] == 1


def test_a_superseded_turn_is_closed_with_a_reason(
    org, account, reply_app, gewe, scheduled, django_capture_on_commit_callbacks
):
    conversation = _customer_says(account, gewe, django_capture_on_commit_callbacks, "一")
    first = Message.objects.get(direction=Message.Direction.INBOUND)
    AITurn.objects.create(
        org=org, conversation=conversation, last_message=first, attempts=1, lease_until=_later(-60)
    )
    # A later turn answered the message (with the next one) meanwhile.
    Conversation.objects.filter(pk=conversation.pk).update(ai_answered_message_id=first.pk)
    scheduled.clear()
    assert ai_turns_recover() == {"requeued": 0, "closed": 1, "handed_off": 0}
    turn = AITurn.objects.get()
    assert turn.status == AITurn.Status.SKIPPED and "superseded" in turn.error
    assert turn.finished_at is not None and scheduled == []


def test_a_turn_lost_too_often_is_handed_to_a_person_with_a_reason(
    org,
    account,
    reply_app,
    gewe,
    scheduled,
    settings,
    handoffs_recorder,
    django_capture_on_commit_callbacks,
):
    conversation = _customer_says(account, gewe, django_capture_on_commit_callbacks, "崩溃")
    last = Message.objects.get(direction=Message.Direction.INBOUND)
    AITurn.objects.filter(conversation=conversation).delete()
    Conversation.objects.filter(pk=conversation.pk).update(ai_answered_message_id=0)
    AITurn.objects.create(
        org=org,
        conversation=conversation,
        last_message=last,
        attempts=settings.CONVERSATION_AI_TURN_MAX_LOST,
        lease_until=_later(-60),
    )
    scheduled.clear()
    with django_capture_on_commit_callbacks(execute=True):
        assert ai_turns_recover()["handed_off"] == 1
    turn = AITurn.objects.get()
    assert turn.status == AITurn.Status.HANDED_OFF and "lost" in turn.error
    conversation.refresh_from_db()
    assert conversation.mode == Conversation.Mode.HUMAN
    assert conversation.handoff_reason == "ai_failed"
    assert len(handoffs_recorder) == 1 and scheduled == []
    # The customer's message is kept.
    assert Message.objects.filter(pk=last.pk).exists()


def test_the_periodic_recovery_runs_the_turn_recovery_twice_safely(
    org, account, reply_app, gewe, scheduled, django_capture_on_commit_callbacks
):
    conversation = _customer_says(account, gewe, django_capture_on_commit_callbacks, "二")
    last = Message.objects.get(direction=Message.Direction.INBOUND)
    AITurn.objects.filter(conversation=conversation).delete()
    Conversation.objects.filter(pk=conversation.pk).update(ai_answered_message_id=0)
    AITurn.objects.create(
        org=org, conversation=conversation, last_message=last, attempts=1, lease_until=_later(-60)
    )
    assert core_loop_recover()["lost_turns"]["requeued"] == 1
    assert core_loop_recover()["lost_turns"]["requeued"] == 0


def test_the_conversation_lock_is_short_and_renewed_while_the_turn_runs(settings):
    assert settings.CONVERSATION_AI_LOCK_SECONDS <= 30
    key = redis_key("test", "turn-lock")
    lock = RedisLock(key, ttl=0.3)
    assert lock.acquire()
    with turn_recovery.renewing(lock):
        time.sleep(1.0)  # three lifetimes: a long AI call
        assert not RedisLock(key, ttl=0.3).acquire()
    # The holder dies without releasing: the lock is free within its lifetime.
    time.sleep(0.45)
    assert RedisLock(key, ttl=0.3).acquire()


def test_unanswered_messages_whose_turn_is_queued_or_running_are_not_rescheduled(
    org, account, reply_app, gewe, scheduled, django_capture_on_commit_callbacks
):
    """A backlog is not stuck: re-scheduling every waiting conversation at each pass grew the
    queue (379 idle turns in the live burst); only a turn task overdue by
    CONVERSATION_AI_RECOVER_SECONDS (lost with a killed worker) is scheduled again."""
    conversation = _customer_says(account, gewe, django_capture_on_commit_callbacks, "排队")
    Message.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    AITurn.objects.all().delete()
    ai._mark_queued(conversation.pk, 0)  # its turn task waits on the queue
    assert ai.conversations_recover_ai() == 0
    lock = ai._lock_for(conversation.pk)
    lock.client.delete(ai._queued_key(conversation.pk))
    assert lock.acquire()  # a turn is running
    try:
        assert ai.conversations_recover_ai() == 0
    finally:
        lock.release()
    scheduled.clear()
    assert ai.conversations_recover_ai() == 1  # overdue: lost
    assert [s["conversation_id"] for s in scheduled] == [conversation.pk]


def test_a_turn_that_starts_clears_its_queued_mark(
    org, account, reply_app, gewe, django_capture_on_commit_callbacks
):
    """Once a turn runs, its lock and lease cover it: a worker killed mid-turn is recovered
    after those (seconds), not after the queued mark (CONVERSATION_AI_RECOVER_SECONDS)."""
    conversation = _customer_says(account, gewe, django_capture_on_commit_callbacks, "标记")
    ai._mark_queued(conversation.pk, 0)
    ai.ai_turn_run(org_id=org.id, conversation_id=conversation.pk)
    assert not ai._lock_for(conversation.pk).client.exists(ai._queued_key(conversation.pk))


def test_the_lease_set_at_the_start_is_renewed_before_a_later_call_only(
    org, account, reply_app, gewe, settings, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.integrations.clients import errors as client_errors

    settings.AI_APP_RETRY_BASE_SECONDS = 0
    settings.CONVERSATION_AI_TURN_LEASE_SECONDS = 0.15  # renewed once 0.05 s have run out
    renewed: list[int] = []
    monkeypatch.setattr(ai, "turn_lease_renew", lambda turn_id: renewed.append(turn_id))
    original, calls = ai._call_app, []

    def slow_then_failing_once(*args, **kwargs):
        calls.append(time.monotonic())
        if len(calls) == 1:
            time.sleep(0.1)
            raise client_errors.UpstreamError("the provider's run failed")
        return original(*args, **kwargs)

    monkeypatch.setattr(ai, "_call_app", slow_then_failing_once)
    _customer_says(account, gewe, django_capture_on_commit_callbacks, "在吗")
    turn = AITurn.objects.get()
    assert turn.status == AITurn.Status.ANSWERED and len(calls) == 2
    # The first call follows the start's lease (no write); the retry comes after a third of it.
    assert renewed == [turn.pk]
