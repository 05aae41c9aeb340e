"""Crash healing of the webhook inbox (issue 18): the sweep re-enqueues only events whose
processing claim expired (or whose enqueue failed), never one waiting on the queue; events are
ordered per chat, not per connection."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from apps.conversations.models import Message
from apps.integrations import webhooks
from apps.integrations.models import WebhookEvent
from apps.integrations.simulators import gewe as gewe_sim
from apps.integrations.webhooks import process
from tests.conftest import requires_postgres
from tests.conversations.helpers import post_webhook

ME = "wxid_heal_me"
APP = "wx_device_heal"
ROOM = "99887766@chatroom"

_ids = iter(range(1, 10**6))


def add_msg(content: str, *, from_wxid: str = "wxid_a", to_wxid: str = ME) -> dict:
    n = next(_ids)
    return gewe_sim.build_add_msg(
        app_id=APP,
        account_wxid=ME,
        from_wxid=from_wxid,
        to_wxid=to_wxid,
        msg_type=1,
        content=content,
        msg_id=2040356095 + n,
        new_msg_id=8773749793478223190 + n * 7919,
    )


@pytest.fixture
def enqueued(monkeypatch):
    calls: list[int] = []
    monkeypatch.setattr(process, "enqueue_process", lambda event_id: calls.append(event_id))
    return calls


def store(conn, content: str, capture, **kwargs) -> WebhookEvent:
    """POST like the platform but keep the processing task from running (it is "on the queue")."""
    with capture(execute=False):
        assert post_webhook(conn, add_msg(content, **kwargs)).status_code == 200
    return WebhookEvent.objects.order_by("-id").first()


def _age(event: WebhookEvent, seconds: float) -> None:
    then = timezone.now() - timedelta(seconds=seconds)
    WebhookEvent.objects.filter(pk=event.pk).update(created_at=then, updated_at=then)


# -- the sweep -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sweep_leaves_an_event_waiting_on_the_queue_alone(
    conn, acct, enqueued, settings, django_capture_on_commit_callbacks
):
    """A backlog is not stuck: re-enqueueing it only grows the queue (2,129 tasks once)."""
    event = store(conn, "queued", django_capture_on_commit_callbacks)
    _age(event, settings.WEBHOOK_STUCK_SECONDS * 5)
    assert webhooks.webhook_events_requeue_stuck_all_orgs() == 0
    assert enqueued == []


@pytest.mark.django_db
def test_sweep_requeues_an_event_whose_claim_expired_once(
    conn, acct, settings, django_capture_on_commit_callbacks
):
    event = store(conn, "killed mid-processing", django_capture_on_commit_callbacks)
    # A worker claimed it and died: the claim's lease runs out.
    assert process._claim(event.pk, timezone.now() - timedelta(minutes=5))
    event.refresh_from_db()
    assert event.claimed_until < timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.webhook_events_requeue_stuck_all_orgs() == 1
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED and event.claimed_until is None
    assert Message.objects.filter(text="killed mid-processing").count() == 1
    assert webhooks.webhook_events_requeue_stuck_all_orgs() == 0


@pytest.mark.django_db
def test_a_live_claim_is_neither_swept_nor_taken_twice(
    conn, acct, enqueued, django_capture_on_commit_callbacks
):
    event = store(conn, "being processed", django_capture_on_commit_callbacks)
    assert process._claim(event.pk, timezone.now())  # a live worker has it
    assert webhooks.webhook_event_process(event_id=event.pk) == "skipped"
    assert webhooks.webhook_events_requeue_stuck_all_orgs() == 0
    assert enqueued == []
    assert not Message.objects.exists()


@pytest.mark.django_db
def test_swept_event_is_not_swept_again_while_it_waits_on_the_queue(
    conn, acct, enqueued, django_capture_on_commit_callbacks
):
    event = store(conn, "requeued", django_capture_on_commit_callbacks)
    WebhookEvent.objects.filter(pk=event.pk).update(claimed_until=timezone.now())
    assert webhooks.webhook_events_requeue_stuck_all_orgs() == 1
    assert webhooks.webhook_events_requeue_stuck_all_orgs() == 0
    assert enqueued == [event.pk]


@pytest.mark.django_db
def test_an_event_the_broker_lost_is_swept_after_the_visibility_timeout(
    conn, acct, enqueued, settings, django_capture_on_commit_callbacks
):
    event = store(conn, "lost by the broker", django_capture_on_commit_callbacks)
    _age(event, settings.CELERY_VISIBILITY_TIMEOUT + settings.WEBHOOK_STUCK_SECONDS + 5)
    assert webhooks.webhook_events_requeue_stuck_all_orgs() == 1
    assert enqueued == [event.pk]


@pytest.mark.django_db
def test_a_failed_enqueue_leaves_the_event_to_the_next_sweep(
    conn, acct, monkeypatch, django_capture_on_commit_callbacks
):
    from apps.integrations import tasks

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.webhook_event_process, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        assert post_webhook(conn, add_msg("broker down")).status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.RECEIVED and event.claimed_until is not None
    calls: list[int] = []
    monkeypatch.setattr(process, "enqueue_process", lambda event_id: calls.append(event_id))
    assert webhooks.webhook_events_requeue_stuck_all_orgs() == 1
    assert calls == [event.pk]


@pytest.mark.django_db
def test_a_retrying_task_keeps_its_claim_until_the_retry_is_due(
    conn, acct, monkeypatch, django_capture_on_commit_callbacks
):
    from celery.exceptions import Retry
    from django.db import OperationalError

    from apps.integrations import tasks

    event = store(conn, "deadlock", django_capture_on_commit_callbacks)

    def deadlocked(**kwargs):
        raise OperationalError("deadlock detected")

    monkeypatch.setattr("apps.conversations.services.inbound_message_record", deadlocked)
    countdowns = []

    def retry(*, exc, countdown):
        countdowns.append(countdown)
        return Retry(exc=exc)

    monkeypatch.setattr(tasks.webhook_event_process, "retry", retry)
    with pytest.raises(Retry):
        tasks.webhook_event_process.run(event_id=event.pk)
    event.refresh_from_db()
    # The retry is due: the sweep leaves the event to it until then, and takes over only if
    # the retry never comes (lost with a killed worker holding it).
    assert event.claimed_until > timezone.now()
    assert webhooks.webhook_events_requeue_stuck_all_orgs() == 0
    later = timezone.now() + timedelta(seconds=countdowns[0] + 1)
    assert process._claim(event.pk, later) is not None  # the retry takes it
    WebhookEvent.objects.filter(pk=event.pk).update(claimed_until=timezone.now())
    assert webhooks.webhook_events_requeue_stuck_all_orgs(now=later) == 1


# -- order per chat ----------------------------------------------------------------------------


def test_order_key_is_the_chat():
    key = webhooks.order_key_for("gewe", add_msg("x", from_wxid="wxid_a"))
    assert key == f"{APP}:wxid_a"
    # Our own message from the phone belongs to the customer's chat.
    assert webhooks.order_key_for("gewe", add_msg("y", from_wxid=ME, to_wxid="wxid_a")) == key
    assert webhooks.order_key_for("gewe", add_msg("z", from_wxid=ROOM)) == f"{APP}:{ROOM}"
    assert webhooks.order_key_for("gewe", {"TypeName": "Offline", "Appid": APP}) == ""
    assert webhooks.order_key_for("gewe", {"TypeName": "AddMsg", "Data": [1]}) == ""


@pytest.mark.django_db
def test_an_event_applies_its_own_chats_older_events_first_and_no_other_chats(
    conn, acct, django_capture_on_commit_callbacks
):
    capture = django_capture_on_commit_callbacks
    a1 = store(conn, "a1", capture, from_wxid="wxid_a")
    b1 = store(conn, "b1", capture, from_wxid="wxid_b")
    a2 = store(conn, "a2", capture, from_wxid="wxid_a")
    assert webhooks.webhook_event_process(event_id=a2.pk) == WebhookEvent.Status.PROCESSED
    statuses = dict(WebhookEvent.objects.values_list("id", "status"))
    assert statuses[a1.pk] == statuses[a2.pk] == WebhookEvent.Status.PROCESSED
    assert statuses[b1.pk] == WebhookEvent.Status.RECEIVED  # another chat: its own task
    assert list(Message.objects.order_by("id").values_list("text", flat=True)) == ["a1", "a2"]
    assert webhooks.webhook_event_process(event_id=a1.pk) == "skipped"
    assert webhooks.webhook_event_process(event_id=b1.pk) == WebhookEvent.Status.PROCESSED


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_a_busy_chat_never_holds_up_another_chat_of_the_same_connection(conn, acct):
    """Chat B's older event is locked by a worker in the middle of it; chat A's event is
    applied at once (a per-connection order made it wait, and deadlock)."""
    b1 = store_committed(conn, "b1", from_wxid="wxid_b")
    a1 = store_committed(conn, "a1", from_wxid="wxid_a")
    locked, release = threading.Event(), threading.Event()

    def worker_on_b1() -> None:
        try:
            with transaction.atomic():
                WebhookEvent.objects.select_for_update().filter(pk=b1.pk).first()
                process._lock_chat(b1.connection_id, b1.order_key)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=worker_on_b1)
    holder.start()
    assert locked.wait(5)
    results: list[str] = []

    def process_a1() -> None:
        try:
            results.append(webhooks.webhook_event_process(event_id=a1.pk))
        finally:
            connection.close()

    started = time.monotonic()
    runner = threading.Thread(target=process_a1)
    runner.start()
    runner.join(timeout=5)
    waited = time.monotonic() - started
    release.set()
    holder.join(timeout=10)
    runner.join(timeout=10)
    assert results == [WebhookEvent.Status.PROCESSED]
    assert waited < 5, "chat A waited for chat B"


def store_committed(conn, content: str, **kwargs) -> WebhookEvent:
    """Stored and committed, processing left to the test (the queue is not consumed)."""
    from apps.integrations.webhooks import receive

    original = receive.enqueue_process
    receive.enqueue_process = lambda event_id, countdown=0.0: None
    try:
        assert post_webhook(conn, add_msg(content, **kwargs)).status_code == 200
    finally:
        receive.enqueue_process = original
    return WebhookEvent.objects.order_by("-id").first()


@pytest.mark.django_db
def test_more_older_events_than_the_limit_apply_the_oldest_then_the_event(
    conn, acct, django_capture_on_commit_callbacks, monkeypatch
):
    monkeypatch.setattr(process, "_OLDER_LIMIT", 2)
    capture = django_capture_on_commit_callbacks
    a1, a2, a3, a4 = (store(conn, f"a{n}", capture, from_wxid="wxid_a") for n in range(1, 5))
    assert webhooks.webhook_event_process(event_id=a4.pk) == WebhookEvent.Status.PROCESSED
    statuses = dict(WebhookEvent.objects.values_list("id", "status"))
    assert [statuses[e.pk] for e in (a1, a2, a3, a4)] == [
        "processed",
        "processed",
        "received",
        "processed",
    ]
    assert list(Message.objects.order_by("id").values_list("text", flat=True)) == ["a1", "a2", "a4"]
