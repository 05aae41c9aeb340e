"""Queueing an answer (``reply_send.send_reply``) under the conversation's lock: the reply row is
inserted with its AI fields, a re-run of the same answer finds its rows by their keys, and the
caller may save the conversation's ``last_message_at`` itself (issue 19)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import transaction

from apps.conversations.models import Conversation, Message
from apps.conversations.reply_send import send_reply
from apps.conversations.services import conversation_locked
from apps.wechat_accounts.services import contact_upsert

pytestmark = pytest.mark.django_db

AI_FIELDS = {
    "ai_latency_ms": 12,
    "ai_input_tokens": 30,
    "ai_output_tokens": 7,
    "ai_cost": Decimal("0.5"),
}


@pytest.fixture
def conversation(org, account):
    contact = contact_upsert(org=org, account=account, wxid="wxid_reply_cust")
    return Conversation.objects.create(org=org, account=account, contact=contact)


@pytest.fixture
def pushed(monkeypatch):
    events: list[tuple[str, dict]] = []
    monkeypatch.setattr(
        "apps.core.realtime.push", lambda t, data, groups: events.append((t, data)) or True
    )
    return events


def _answer(conversation, reply_app, **kwargs):
    with transaction.atomic():
        locked = conversation_locked(conversation.org_id, conversation.pk)
        return locked, send_reply(
            conversation=locked,
            text="an answer",
            key_prefix="ai:77",
            sender_kind=Message.SenderKind.AI,
            ai_app=reply_app,
            message_fields=AI_FIELDS,
            **kwargs,
        )


def test_reply_is_inserted_with_its_ai_fields_and_pushed_once(
    conversation, reply_app, pushed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        _locked, [message] = _answer(conversation, reply_app)
    stored = Message.objects.get(pk=message.pk)
    assert (stored.ai_app_id, stored.ai_latency_ms, stored.ai_cost) == (
        reply_app.pk,
        12,
        Decimal("0.5"),
    )
    assert stored.status == Message.Status.QUEUED and stored.client_msg_id == "ai:77:0"
    assert Conversation.objects.get(pk=conversation.pk).last_message_at is not None


def test_new_message_carries_the_queued_state_without_a_status_push(
    conversation, reply_app, pushed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        _answer(conversation, reply_app)
    types = [t for t, _data in pushed]
    assert "message_status_update" not in types[: types.index("new_message") + 1]
    new = next(data for t, data in pushed if t == "new_message")
    assert new["message"]["status"] == Message.Status.QUEUED


def test_a_rerun_of_the_same_answer_queues_nothing_more(
    conversation, reply_app, pushed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        _locked, first = _answer(conversation, reply_app)
        _locked, again = _answer(conversation, reply_app)
    assert [m.pk for m in again] == [m.pk for m in first]
    assert Message.objects.filter(conversation=conversation).count() == 1


def test_the_caller_may_save_last_message_at_itself(
    conversation, reply_app, pushed, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        locked, _messages = _answer(conversation, reply_app, touch_conversation=False)
    assert Conversation.objects.get(pk=conversation.pk).last_message_at is None  # not saved
    assert locked.last_message_at is not None
    locked.save(update_fields=["last_message_at", "updated_at"])
    assert Conversation.objects.get(pk=conversation.pk).last_message_at == locked.last_message_at
