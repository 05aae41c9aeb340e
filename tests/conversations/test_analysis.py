"""Intent and sentiment: the typed organisation mode (off / intent / intent + sentiment) and
the negative threshold in the AI turn, results per inbound message, metering, and the backfill
(service and command) bounded by the 10-in-flight batch limit, with progress and billing."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.billing.models import CostLedger
from apps.conversations import analysis
from apps.conversations.models import Conversation, Message
from apps.wechat_accounts.services import contact_upsert
from tests.conversations.helpers import deliver

pytestmark = pytest.mark.django_db

NEGATIVE = '{"sentiment": "negative", "score": -0.9, "intent": "complaint", "confidence": 0.9}'
NEUTRAL = '{"sentiment": "neutral", "score": -0.2, "intent": "price_inquiry", "confidence": 0.8}'


def say(gewe, account, body):
    return gewe.build_text(from_wxid="wxid_cust0001", text=body, to_account=account.device_id)


def _settings(org, **values):
    org.settings = {**(org.settings or {}), **values}
    org.save(update_fields=["settings"])


def test_off_analyses_nothing(
    org, account, reply_app, gewe, openai_sim, django_capture_on_commit_callbacks
):
    _settings(org, ai_analysis_mode="off")
    deliver(account.connection, say(gewe, account, "多少钱"), django_capture_on_commit_callbacks)
    message = Message.objects.get(direction="inbound")
    assert (message.intent, message.sentiment) == ("", "")
    assert len(openai_sim.requests_to("/chat/completions")) == 1  # the answer only


def test_intent_only(org, account, reply_app, gewe, openai_sim, django_capture_on_commit_callbacks):
    _settings(org, ai_analysis_mode="intent")
    openai_sim.canned["太差了"] = NEGATIVE
    deliver(account.connection, say(gewe, account, "太差了"), django_capture_on_commit_callbacks)
    message = Message.objects.get(direction="inbound")
    assert (message.intent, message.sentiment, message.sentiment_score) == ("complaint", "", None)
    assert Conversation.objects.get().mode == "ai"  # no sentiment, no handoff
    assert CostLedger.objects.filter(request_id=f"analysis:intent:{message.pk}").exists()


def test_intent_and_sentiment_with_threshold(
    org, account, reply_app, gewe, openai_sim, django_capture_on_commit_callbacks
):
    _settings(org, ai_analysis_mode="intent_sentiment", ai_negative_handoff_threshold=95)
    openai_sim.canned["太差了"] = NEGATIVE
    cap = django_capture_on_commit_callbacks
    deliver(account.connection, say(gewe, account, "太差了"), cap)
    message = Message.objects.get(direction="inbound")
    assert (message.intent, message.sentiment, message.sentiment_score) == (
        "complaint",
        "negative",
        -0.9,
    )
    assert Conversation.objects.get().mode == "ai"  # -0.9 is above -0.95
    assert CostLedger.objects.filter(request_id=f"analysis:sentiment:{message.pk}").exists()
    _settings(org, ai_negative_handoff_threshold=80)
    deliver(account.connection, say(gewe, account, "真的太差了"), cap)
    conversation = Conversation.objects.get()
    assert (conversation.mode, conversation.handoff_reason) == ("human", "sentiment")


def test_threshold_zero_never_hands_off(
    org, account, reply_app, gewe, openai_sim, django_capture_on_commit_callbacks
):
    _settings(org, ai_analysis_mode="intent_sentiment", ai_negative_handoff_threshold=0)
    openai_sim.canned["太差了"] = NEGATIVE
    deliver(account.connection, say(gewe, account, "太差了"), django_capture_on_commit_callbacks)
    assert Conversation.objects.get().mode == "ai"


# -- backfill ------------------------------------------------------------------------------------


@pytest.fixture
def history(org, account, reply_app, openai_sim):
    openai_sim.canned["贵"] = NEUTRAL
    contact = contact_upsert(org=org, account=account, wxid="wxid_hist")
    conversation = Conversation.objects.create(org=org, account=account, contact=contact)
    old = timezone.now() - timedelta(days=3)
    rows = []
    for index in range(25):
        rows.append(
            Message(
                org=org,
                conversation=conversation,
                direction="inbound",
                sender_kind="customer",
                text=f"太贵了 {index}",
            )
        )
    Message.objects.bulk_create(rows)
    Message.objects.filter(conversation=conversation).update(created_at=old)
    # Outside the range, and not customer text: never analysed.
    Message.objects.create(
        org=org, conversation=conversation, direction="inbound", sender_kind="customer", text="新"
    )
    Message.objects.create(
        org=org, conversation=conversation, direction="outbound", sender_kind="ai", text="贵"
    )
    Message.objects.filter(text="贵").update(created_at=old)
    return conversation


def test_backfill_analyses_the_range_with_progress_billing_and_the_batch_limit(
    org, history, settings, monkeypatch
):
    from apps.integrations.clients import ai as ai_clients

    settings.CONVERSATION_ANALYSIS_BATCH_CONCURRENCY = 50  # clamped to the seed's 10
    seen_concurrency = []
    original = ai_clients.batch

    def spy(func, items, *, concurrency=10):
        seen_concurrency.append(concurrency)
        return original(func, items, concurrency=concurrency)

    monkeypatch.setattr(ai_clients, "batch", spy)
    progress = []
    start = timezone.now() - timedelta(days=4)
    end = timezone.now() - timedelta(days=1)
    result = analysis.analysis_backfill(
        org=org, start=start, end=end, batch_size=10, progress=lambda d, t: progress.append((d, t))
    )
    assert (result.total, result.analysed, result.failed) == (25, 25, 0)
    assert progress == [(0, 25), (10, 25), (20, 25), (25, 25)]
    assert seen_concurrency and max(seen_concurrency) == 10
    analysed = Message.objects.filter(conversation=history, sender_kind="customer").exclude(
        intent=""
    )
    assert analysed.count() == 25
    assert set(analysed.values_list("intent", "sentiment")) == {("price_inquiry", "neutral")}
    assert Message.objects.get(text="新").intent == ""
    assert CostLedger.objects.filter(kind="intent", org=org).count() == 25
    assert CostLedger.objects.filter(kind="sentiment", org=org).count() == 25
    # A second run finds nothing left and bills nothing more.
    again = analysis.analysis_backfill(org=org, start=start, end=end)
    assert again.total == 0 and CostLedger.objects.filter(kind="intent").count() == 25


def test_backfill_command_and_other_org_untouched(org, other_org, history):
    out = StringIO()
    day = (timezone.now() - timedelta(days=3)).astimezone(org.tzinfo).date().isoformat()
    call_command("analysis_backfill", "--org", org.slug, "--from", day, "--to", day, stdout=out)
    assert "analysed 25 of 25" in out.getvalue()
    out = StringIO()
    call_command(
        "analysis_backfill", "--org", other_org.slug, "--from", day, "--to", day, stdout=out
    )
    assert "analysed 0 of 0" in out.getvalue()  # another organisation's run sees none of ours
