"""An AI reply's first delivery attempt runs in the AI worker right after its commit (issue 19):
no task on the send queue for it, while waits, retries and every other sender still queue."""

from __future__ import annotations

from unittest import mock

import pytest

from apps.conversations import ai
from apps.conversations.models import Conversation, Message
from apps.conversations.outbound import queue
from tests.conversations.helpers import deliver

pytestmark = pytest.mark.django_db

CUSTOMER = "wxid_inline01"


def _payload(gewe, account, body="有货吗"):
    return gewe.build_text(from_wxid=CUSTOMER, text=body, to_account=account.device_id)


@pytest.fixture
def enqueued():
    """Every delivery task queued (its arguments), the task itself still run eagerly."""
    calls = []
    real = queue.enqueue

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    with mock.patch("apps.conversations.outbound.queue.enqueue", side_effect=spy):
        yield calls


def test_ai_reply_is_sent_inline_without_a_send_task(
    account, reply_app, gewe, enqueued, django_capture_on_commit_callbacks
):
    deliver(account.connection, _payload(gewe, account), django_capture_on_commit_callbacks)
    reply = Message.objects.get(direction="outbound")
    assert reply.status == Message.Status.SENT and reply.attempts == 1
    assert [s["body"].get("content") for s in gewe.sent] == ["echo: 有货吗"]
    assert enqueued == []  # sent from the AI turn: nothing went through the send queue


def test_switched_off_the_reply_goes_through_the_send_queue(
    account, reply_app, gewe, enqueued, settings, django_capture_on_commit_callbacks
):
    settings.OUTBOUND_INLINE_FIRST_ATTEMPT = False
    deliver(account.connection, _payload(gewe, account), django_capture_on_commit_callbacks)
    reply = Message.objects.get(direction="outbound")
    assert reply.status == Message.Status.SENT
    assert [c["message_id"] for c in enqueued] == [reply.pk]


def test_an_inline_attempt_that_raises_is_handed_to_the_queue(
    account, reply_app, gewe, enqueued, django_capture_on_commit_callbacks
):
    # The queued task runs the real delivery (the patch covers the inline call only).
    with mock.patch(
        "apps.conversations.outbound.delivery.outbound_deliver",
        side_effect=RuntimeError("worker hiccup"),
    ):
        deliver(account.connection, _payload(gewe, account), django_capture_on_commit_callbacks)
    reply = Message.objects.get(direction="outbound")
    assert [c["message_id"] for c in enqueued] == [reply.pk]
    # Nothing is lost: the queued task sends it (eagerly here), once.
    assert reply.status == Message.Status.SENT and len(gewe.sent) == 1


def test_a_human_like_delay_is_never_waited_inline(
    account, reply_app, gewe, enqueued, settings, django_capture_on_commit_callbacks
):
    settings.WECHAT_SEND_DELAY_SCALE = 1.0
    account.delay_min_seconds = account.delay_max_seconds = 5
    account.save(update_fields=["delay_min_seconds", "delay_max_seconds"])
    deliver(account.connection, _payload(gewe, account), django_capture_on_commit_callbacks)
    reply = Message.objects.get(direction="outbound")
    # Queued with the delay as its countdown (eager Celery then skips the wait).
    assert [(c["message_id"], c["countdown"] > 0) for c in enqueued] == [(reply.pk, True)]


def test_outside_an_ai_turn_nothing_is_inline(account, reply_app, gewe):
    assert not queue.inline_requested()
    with queue.inline_first_attempt():
        assert queue.inline_requested()
    assert not queue.inline_requested()


def test_other_organisations_reply_is_not_sent_by_a_turn_of_this_one(
    account, reply_app, gewe, other_org, django_capture_on_commit_callbacks
):
    """The inline attempt names the message's own organisation: a turn of another
    organisation's conversation id finds nothing to run and sends nothing."""
    deliver(account.connection, _payload(gewe, account), django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get()
    sent_before = len(gewe.sent)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = ai.ai_turn_run(org_id=other_org.pk, conversation_id=conversation.pk)
    assert outcome == "missing" and len(gewe.sent) == sent_before
