"""The AI turn end to end against the simulators: webhook -> message -> AI -> outbound send.

Celery runs eagerly; ``deliver`` executes the on-commit work (processing, turn, delivery)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.billing.models import CostLedger
from apps.conversations import ai
from apps.conversations.models import AITurn, Conversation, Message
from apps.conversations.services import conversation_handoff
from apps.core import events
from apps.integrations import webhooks
from apps.integrations.models import WebhookEvent
from apps.integrations.simulators.gewe import MENTION_END
from tests.billing.factories import BudgetFactory
from tests.conversations.helpers import ai_app, deliver, post_webhook

pytestmark = pytest.mark.django_db

CUSTOMER = "wxid_cust0001"
ROOM = "45000000001@chatroom"


@pytest.fixture
def handoffs():
    received = []

    def receiver(sender, **kwargs):
        received.append(kwargs)

    events.conversation_handed_off.connect(receiver, dispatch_uid="test-handoffs")
    yield received
    events.conversation_handed_off.disconnect(dispatch_uid="test-handoffs")


def text(gewe, account, body, sender=CUSTOMER):
    return gewe.build_text(from_wxid=sender, text=body, to_account=account.device_id)


def sent_texts(gewe):
    return [s["body"].get("content") for s in gewe.sent]


def test_private_message_is_answered_once(
    account, reply_app, gewe, openai_sim, django_capture_on_commit_callbacks
):
    payload = text(gewe, account, "你好，有货吗")
    deliver(account.connection, payload, django_capture_on_commit_callbacks)
    assert sent_texts(gewe) == ["echo: 你好，有货吗"]
    conversation = Conversation.objects.get()
    inbound = conversation.messages.get(direction="inbound")
    assert inbound.triggers_ai and conversation.ai_answered_message_id == inbound.pk
    reply = conversation.messages.get(direction="outbound")
    assert reply.sender_kind == "ai" and reply.status == "sent" and reply.ai_app_id == reply_app.pk
    assert reply.ai_input_tokens and reply.ai_output_tokens == len("echo: 你好，有货吗")
    turn = AITurn.objects.get()
    assert turn.status == AITurn.Status.ANSWERED and turn.last_message_id == inbound.pk
    assert CostLedger.objects.filter(request_id=f"ai-turn-{turn.pk}").count() == 1
    # The same event again, and the turn task again: nothing new.
    deliver(account.connection, payload, django_capture_on_commit_callbacks)
    assert ai.ai_turn_run(org_id=conversation.org_id, conversation_id=conversation.pk) == "nothing"
    assert len(gewe.sent) == 1 and AITurn.objects.count() == 1
    assert len(openai_sim.requests_to("/chat/completions")) == 1


def test_finished_turn_is_never_run_again(
    account, reply_app, gewe, django_capture_on_commit_callbacks
):
    deliver(account.connection, text(gewe, account, "one"), django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get()
    # Simulate a redelivered task that read the old pointer: the AITurn row stops it.
    Conversation.objects.filter(pk=conversation.pk).update(ai_answered_message_id=0)
    with django_capture_on_commit_callbacks(execute=True):
        outcome = ai.ai_turn_run(org_id=conversation.org_id, conversation_id=conversation.pk)
    assert outcome == "duplicate" and len(gewe.sent) == 1
    conversation.refresh_from_db()
    assert conversation.ai_answered_message_id > 0


def test_context_has_history_and_names(
    account, reply_app, gewe, openai_sim, django_capture_on_commit_callbacks
):
    deliver(account.connection, text(gewe, account, "first"), django_capture_on_commit_callbacks)
    deliver(account.connection, text(gewe, account, "second"), django_capture_on_commit_callbacks)
    body = openai_sim.requests_to("/chat/completions")[-1].json
    contents = [(m["role"], m["content"]) for m in body["messages"]]
    assert contents[-3:] == [("user", "first"), ("assistant", "echo: first"), ("user", "second")]


def test_handoff_keyword_goes_to_a_person(
    account, reply_app, gewe, openai_sim, handoffs, django_capture_on_commit_callbacks
):
    account.owner_id = None
    deliver(
        account.connection, text(gewe, account, "我要转人工"), django_capture_on_commit_callbacks
    )
    conversation = Conversation.objects.get()
    assert (conversation.mode, conversation.status, conversation.handoff_reason) == (
        "human",
        "pending",
        "keyword",
    )
    assert conversation.messages.get().text == "我要转人工"
    assert gewe.sent == [] and openai_sim.requests_to("/chat/completions") == []
    assert handoffs[0]["conversation_id"] == conversation.pk and handoffs[0]["reason"] == "keyword"
    # Later messages stay with the person.
    deliver(account.connection, text(gewe, account, "人呢"), django_capture_on_commit_callbacks)
    assert gewe.sent == [] and conversation.messages.count() == 2


def test_org_handoff_keywords(org, account, reply_app, gewe, django_capture_on_commit_callbacks):
    org.settings = {"handoff_keywords": ["找经理"]}
    org.save()
    deliver(account.connection, text(gewe, account, "我找经理"), django_capture_on_commit_callbacks)
    assert Conversation.objects.get().mode == "human"


@pytest.mark.parametrize(
    "fault",
    [
        {"kind": "error", "status": 500},
        {"kind": "rate_limit", "retry_after": 0},
        {"kind": "garbage"},
    ],
)
def test_ai_failure_retries_then_hands_off(
    account, reply_app, gewe, openai_sim, handoffs, fault, django_capture_on_commit_callbacks
):
    openai_sim.add_fault(path="/chat/completions", **fault)
    deliver(account.connection, text(gewe, account, "报价多少"), django_capture_on_commit_callbacks)
    attempts = len(openai_sim.requests_to("/chat/completions"))
    assert attempts >= 2  # retried (client retries inside each of the turn's attempts)
    conversation = Conversation.objects.get()
    assert (conversation.mode, conversation.status, conversation.handoff_reason) == (
        "human",
        "pending",
        "ai_failed",
    )
    assert conversation.messages.get().text == "报价多少"  # kept, unanswered
    assert gewe.sent == []
    assert AITurn.objects.get().status == AITurn.Status.HANDED_OFF
    assert [h["reason"] for h in handoffs] == ["ai_failed"]


def test_ai_timeout_hands_off(
    account, reply_app, gewe, openai_sim, settings, django_capture_on_commit_callbacks
):
    settings.AI_HTTP_TIMEOUT = (1, 0.3)
    openai_sim.add_fault("hang", path="/chat/completions", delay=1.0)
    deliver(account.connection, text(gewe, account, "在吗"), django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get()
    assert conversation.mode == "human" and "Timeout" in AITurn.objects.get().error
    assert gewe.sent == []


def test_cut_stream_is_retried_then_answered_or_handed_off(
    org, account, gewe, openai_sim, simulators_clean, django_capture_on_commit_callbacks
):
    ai_app(org, simulators_clean, streaming=True)
    openai_sim.add_fault("cut", path="/chat/completions", after_chunks=1, times=1)
    deliver(account.connection, text(gewe, account, "流式"), django_capture_on_commit_callbacks)
    # The first stream broke, the second attempt answered; the partial text was never sent.
    assert sent_texts(gewe) == ["echo: 流式"]
    openai_sim.add_fault("cut", path="/chat/completions", after_chunks=1)
    deliver(account.connection, text(gewe, account, "again"), django_capture_on_commit_callbacks)
    assert sent_texts(gewe) == ["echo: 流式"]
    assert Conversation.objects.get().handoff_reason == "ai_failed"


def test_streaming_pushes_partials(
    org, account, gewe, simulators_clean, monkeypatch, django_capture_on_commit_callbacks
):
    ai_app(org, simulators_clean, streaming=True)
    pushed = []
    monkeypatch.setattr(
        "apps.core.realtime.push", lambda t, data, groups: pushed.append((t, data)) or True
    )
    deliver(
        account.connection,
        text(gewe, account, "stream me please"),
        django_capture_on_commit_callbacks,
    )
    statuses = [d["status"] for t, d in pushed if t == "ai_processing_status"]
    assert statuses[0] == "thinking" and statuses[-1] == "done" and "streaming" in statuses
    partials = [
        d["text"] for t, d in pushed if t == "ai_processing_status" and d["status"] == "streaming"
    ]
    assert partials[-1] == "echo: stream me please" and len(partials) > 1
    assert any(t == "new_message" for t, _ in pushed)


def test_budget_exhausted_hands_off(
    org, account, reply_app, gewe, openai_sim, django_capture_on_commit_callbacks
):
    BudgetFactory(org=org, money_limit=None, token_limit=1)
    deliver(account.connection, text(gewe, account, "预算"), django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get()
    assert (conversation.mode, conversation.handoff_reason) == ("human", "budget")
    assert openai_sim.requests_to("/chat/completions") == [] and gewe.sent == []
    assert conversation.messages.get().text == "预算"


def test_no_ai_app_hands_off(account, gewe, django_capture_on_commit_callbacks):
    deliver(account.connection, text(gewe, account, "hi"), django_capture_on_commit_callbacks)
    assert Conversation.objects.get().handoff_reason == "no_ai_app"


def test_long_answer_is_split_in_order(
    account, reply_app, gewe, openai_sim, settings, django_capture_on_commit_callbacks
):
    settings.CONVERSATION_REPLY_CHUNK_CHARS = 20
    answer = "第一句话很长很长。第二句话也很长很长！第三句话。"
    openai_sim.canned["长答案"] = answer * 2
    deliver(account.connection, text(gewe, account, "长答案"), django_capture_on_commit_callbacks)
    sent = sent_texts(gewe)
    assert len(sent) > 1 and all(len(s) <= 20 for s in sent)
    assert "".join(sent) == (answer * 2)
    ids = list(
        Message.objects.filter(sender_kind="ai").order_by("id").values_list("text", flat=True)
    )
    assert ids == sent


def test_split_reply_rules():
    assert ai.split_reply("short", 10) == ["short"]
    parts = ai.split_reply("a" * 25, 10)
    assert parts == ["a" * 10, "a" * 10, "a" * 5]
    assert ai.split_reply("one.\n\ntwo.", 6) == ["one.", "two."]


def test_sentiment_negative_hands_off(
    org, account, reply_app, gewe, openai_sim, django_capture_on_commit_callbacks
):
    org.settings = {"ai_analysis": True}
    org.save()
    openai_sim.canned["太差了"] = (
        '{"sentiment": "negative", "score": -0.9, "intent": "complaint", "confidence": 0.9}'
    )
    deliver(
        account.connection, text(gewe, account, "你们太差了"), django_capture_on_commit_callbacks
    )
    conversation = Conversation.objects.get()
    assert conversation.handoff_reason == "sentiment"
    message = conversation.messages.get()
    assert (message.intent, message.sentiment, message.sentiment_score) == (
        "complaint",
        "negative",
        -0.9,
    )
    assert gewe.sent == []
    # A neutral message is analysed and answered.
    conversation_handoff(org=org, conversation_id=conversation.pk, mode="ai")
    openai_sim.canned["谢谢"] = (
        '{"sentiment": "positive", "score": 0.8, "intent": "chitchat", "confidence": 1}'
    )
    deliver(account.connection, text(gewe, account, "谢谢"), django_capture_on_commit_callbacks)
    assert Message.objects.filter(sender_kind="ai").count() == 1
    assert Message.objects.get(text="谢谢").sentiment == "positive"


# -- group policies ----------------------------------------------------------------------------


def group_text(gewe, account, body, at=()):
    return gewe.build_group_text(
        chatroom_id=ROOM,
        sender_wxid="wxid_member1",
        text=body,
        at_wxids=list(at),
        to_account=account.device_id,
    )


@pytest.mark.parametrize(
    ("policy", "keywords", "expected"),
    [
        ("off", [], []),
        ("mention", [], ["mention"]),
        ("keywords", ["价格"], ["价格 please"]),
        ("all", [], ["plain", "mention", "价格 please"]),
    ],
)
def test_group_reply_policies(
    account, reply_app, gewe, policy, keywords, expected, django_capture_on_commit_callbacks
):
    account.group_reply_policy = policy
    account.reply_keywords = keywords
    account.save()
    cap = django_capture_on_commit_callbacks
    deliver(account.connection, group_text(gewe, account, "plain"), cap)
    deliver(
        account.connection,
        group_text(gewe, account, f"@销售小王{MENTION_END}mention", at=[account.wxid]),
        cap,
    )
    deliver(account.connection, group_text(gewe, account, "价格 please"), cap)
    answered = [t.split("echo: ", 1)[1] for t in sent_texts(gewe)]
    # Group questions carry the speaker's name for the AI.
    assert [a.split(MENTION_END)[-1].removeprefix("wxid_member1: ") for a in answered] == expected
    if expected:
        first = gewe.sent[0]["body"]
        assert first["ats"] == "wxid_member1"
        assert first["content"].startswith("@wxid_member1")


def test_private_policy_off_and_blocked_contacts(
    account, reply_app, gewe, django_capture_on_commit_callbacks
):
    account.private_reply_policy = "off"
    account.save()
    deliver(account.connection, text(gewe, account, "hi"), django_capture_on_commit_callbacks)
    assert gewe.sent == []
    account.private_reply_policy = "all"
    account.save()
    from apps.wechat_accounts.models import Contact

    Contact.objects.filter(wxid=CUSTOMER).update(is_blocked=True)
    deliver(account.connection, text(gewe, account, "hi again"), django_capture_on_commit_callbacks)
    assert gewe.sent == []


# -- phone replies, echoes, hand back ------------------------------------------------------------


def test_phone_reply_pauses_the_ai(
    account, reply_app, gewe, settings, django_capture_on_commit_callbacks
):
    cap = django_capture_on_commit_callbacks
    phone = gewe.build_self_sent(to_wxid=CUSTOMER, text="我来回答", to_account=account.device_id)
    deliver(account.connection, phone, cap)
    conversation = Conversation.objects.get()
    message = conversation.messages.get()
    assert (message.direction, message.sender_kind, message.status) == ("outbound", "phone", "sent")
    assert conversation.mode == "human" and conversation.handoff_reason == "phone_reply"
    assert conversation.ai_paused_until > timezone.now()
    deliver(account.connection, text(gewe, account, "好的谢谢"), cap)
    assert gewe.sent == []  # paused
    Conversation.objects.filter(pk=conversation.pk).update(
        ai_paused_until=timezone.now() - timedelta(seconds=1)
    )
    deliver(account.connection, text(gewe, account, "还有问题"), cap)
    assert sent_texts(gewe) == ["echo: 还有问题"]
    assert Conversation.objects.get().mode == "ai"


def test_echo_of_our_own_send_is_not_a_phone_reply(
    account, reply_app, gewe, django_capture_on_commit_callbacks
):
    deliver(account.connection, text(gewe, account, "hello"), django_capture_on_commit_callbacks)
    record = gewe.sent[0]
    echo = gewe.build_self_sent(
        to_wxid=CUSTOMER, text=record["body"]["content"], to_account=account.device_id
    )
    echo["Data"]["NewMsgId"] = record["newMsgId"]
    deliver(account.connection, echo, django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get()
    assert conversation.mode == "ai"
    assert not conversation.messages.filter(sender_kind="phone").exists()


def test_hand_back_to_ai_does_not_answer_stale_messages(
    org, account, reply_app, gewe, django_capture_on_commit_callbacks
):
    cap = django_capture_on_commit_callbacks
    deliver(account.connection, text(gewe, account, "转人工"), cap)
    deliver(account.connection, text(gewe, account, "hello?"), cap)
    conversation = Conversation.objects.get()
    with cap(execute=True):
        conversation_handoff(org=org, conversation_id=conversation.pk, mode="ai")
    conversation.refresh_from_db()
    assert conversation.mode == "ai" and conversation.status == "open"
    assert gewe.sent == []
    deliver(account.connection, text(gewe, account, "new question"), cap)
    assert sent_texts(gewe) == ["echo: new question"]


# -- merge window ----------------------------------------------------------------------------------


def test_merge_window_answers_quick_messages_together(
    account, reply_app, gewe, openai_sim, settings, django_capture_on_commit_callbacks
):
    settings.CONVERSATION_MERGE_WINDOW_SECONDS = 2
    cap = django_capture_on_commit_callbacks
    deliver(account.connection, text(gewe, account, "第一条"), cap)
    deliver(account.connection, text(gewe, account, "第二条"), cap)
    conversation = Conversation.objects.get()
    # Inside the window the turn waits for more.
    assert ai.ai_turn_run(org_id=conversation.org_id, conversation_id=conversation.pk) == "merging"
    assert gewe.sent == []
    Message.objects.update(created_at=timezone.now() - timedelta(seconds=3))
    with cap(execute=True):
        assert (
            ai.ai_turn_run(org_id=conversation.org_id, conversation_id=conversation.pk)
            == "answered"
        )
    assert sent_texts(gewe) == ["echo: 第一条\n第二条"]
    assert AITurn.objects.count() == 1
    assert len(openai_sim.requests_to("/chat/completions")) == 1


def test_recovery_schedules_unanswered_turns(
    account, reply_app, gewe, settings, django_capture_on_commit_callbacks
):
    settings.CONVERSATION_MERGE_WINDOW_SECONDS = 5  # eager mode: the delayed turn is not run
    deliver(account.connection, text(gewe, account, "lost"), django_capture_on_commit_callbacks)
    assert gewe.sent == []
    Message.objects.update(created_at=timezone.now() - timedelta(minutes=5))
    with django_capture_on_commit_callbacks(execute=True):
        assert ai.conversations_recover_ai() == 1
    assert sent_texts(gewe) == ["echo: lost"]
    assert ai.conversations_recover_ai() == 0


def test_busy_conversation_lock_defers(
    account, reply_app, gewe, django_capture_on_commit_callbacks
):
    deliver(account.connection, text(gewe, account, "first"), django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get()
    lock = ai._lock_for(conversation.pk)
    assert lock.acquire()
    try:
        assert ai.ai_turn_run(org_id=conversation.org_id, conversation_id=conversation.pk) == "busy"
    finally:
        lock.release()


def test_stale_history_is_stored_not_answered(
    account, reply_app, gewe, django_capture_on_commit_callbacks
):
    payload = text(gewe, account, "old")
    payload["Data"]["CreateTime"] = int(timezone.now().timestamp()) - 3600
    deliver(account.connection, payload, django_capture_on_commit_callbacks)
    assert Message.objects.get().triggers_ai is False and gewe.sent == []


def test_a_turn_for_another_organisation_finds_nothing_pending(
    account, reply_app, gewe, other_org, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):  # stored, not processed yet
        assert post_webhook(account.connection, text(gewe, account, "在吗")).status_code == 200
    webhooks.webhook_event_process(event_id=WebhookEvent.objects.get().pk)  # turn not run
    conversation = Conversation.objects.get()
    assert conversation.messages.filter(triggers_ai=True).exists()
    assert ai.ai_turn_run(org_id=other_org.pk, conversation_id=conversation.pk) == "missing"
    assert AITurn.objects.count() == 0 and gewe.sent == []
