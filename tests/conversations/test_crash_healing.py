"""Crashes heal in seconds (issue 18): an AI slot of a dead holder is free again within its
short lease, a live holder keeps its slot by renewing it, and waiting for a slot never turns a
healthy conversation over to a person (the turn is re-queued)."""

from __future__ import annotations

import time
import uuid

import pytest

from apps.conversations import ai
from apps.conversations.models import Conversation, Message
from apps.core.redis import get_redis, redis_key
from apps.integrations.clients.concurrency import AIConcurrencyLimiter
from apps.integrations.clients.errors import ConcurrencyTimeout
from apps.integrations.services import ai_limiter_for
from tests.conversations.helpers import deliver

pytestmark = pytest.mark.django_db


def _limiter(**kwargs) -> AIConcurrencyLimiter:
    key = redis_key("test", "slots", uuid.uuid4().hex)  # "{...}" keys escape the test cleanup
    return AIConcurrencyLimiter(get_redis(), key, limit=1, **kwargs)


def test_dead_holders_slot_is_free_within_its_lease():
    limiter = _limiter(lease_seconds=0.3, timeout=0.05)
    limiter.acquire()  # a worker takes the slot and is SIGKILLed: nobody renews or releases
    with pytest.raises(ConcurrencyTimeout):
        limiter.acquire(timeout=0.05)
    started = time.monotonic()
    token = limiter.acquire(timeout=2.0)
    assert token
    assert time.monotonic() - started < 1.0


def test_live_holder_keeps_its_slot_past_the_lease():
    limiter = _limiter(lease_seconds=0.3, timeout=0.05)
    with limiter.slot():
        time.sleep(1.0)  # a slow AI call: three leases long
        with pytest.raises(ConcurrencyTimeout):
            limiter.acquire(timeout=0.05)
    assert limiter.in_flight() == 0
    assert limiter.acquire(timeout=0.05)


def test_slot_lease_setting_is_short(settings):
    limiter = ai_limiter_for(1)
    assert limiter.lease_ms == int(settings.AI_IN_FLIGHT_LEASE_SECONDS * 1000) <= 30_000


def test_waiting_for_a_slot_requeues_the_turn_instead_of_handing_off(
    settings,
    org,
    account,
    reply_app,
    gewe,
    monkeypatch,
    handoffs_recorder,
    django_capture_on_commit_callbacks,
):
    settings.AI_MAX_IN_FLIGHT_PER_ORG = 1
    settings.AI_IN_FLIGHT_WAIT_SECONDS = 0.1
    blocker = ai_limiter_for(org.id)
    token = blocker.acquire()  # every slot of the organisation is taken
    scheduled = []
    monkeypatch.setattr(ai, "schedule_turn", lambda **kwargs: scheduled.append(kwargs) or True)
    payload = gewe.build_text(from_wxid="wxid_wait01", text="有货吗", to_account=account.device_id)
    deliver(account.connection, payload, django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get(org=org)
    assert ai.ai_turn_run(org_id=org.id, conversation_id=conversation.pk) == "busy"
    conversation.refresh_from_db()
    assert conversation.mode == Conversation.Mode.AI
    assert not handoffs_recorder
    assert scheduled and scheduled[-1]["conversation_id"] == conversation.pk
    assert not Message.objects.filter(direction=Message.Direction.OUTBOUND).exists()

    blocker.release(token)
    monkeypatch.undo()
    assert ai.ai_turn_run(org_id=org.id, conversation_id=conversation.pk) == "answered"
    assert Message.objects.filter(direction=Message.Direction.OUTBOUND).exists()


def test_a_turn_waits_only_briefly_for_a_slot_then_frees_its_worker(
    settings, org, account, reply_app, gewe, monkeypatch, django_capture_on_commit_callbacks
):
    """An organisation whose AI slots are all taken (a slow provider) does not hold a worker
    thread for the long client wait: the turn gives up after CONVERSATION_AI_SLOT_WAIT_SECONDS
    and is re-queued, so other organisations' turns get the thread (issue 19)."""
    import time

    settings.AI_MAX_IN_FLIGHT_PER_ORG = 1
    settings.AI_IN_FLIGHT_WAIT_SECONDS = 30  # what other callers (tests, backfills) wait
    settings.CONVERSATION_AI_SLOT_WAIT_SECONDS = 0.2
    blocker = ai_limiter_for(org.id)
    token = blocker.acquire()
    scheduled = []
    monkeypatch.setattr(ai, "schedule_turn", lambda **kwargs: scheduled.append(kwargs) or True)
    payload = gewe.build_text(from_wxid="wxid_wait02", text="在吗", to_account=account.device_id)
    deliver(account.connection, payload, django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get(org=org)
    started = time.monotonic()
    assert ai.ai_turn_run(org_id=org.id, conversation_id=conversation.pk) == "busy"
    assert time.monotonic() - started < 10  # not the 30 s client wait
    assert scheduled and scheduled[-1]["conversation_id"] == conversation.pk
    blocker.release(token)
