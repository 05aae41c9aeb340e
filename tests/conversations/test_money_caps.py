"""Budgets that truly cap and replies that fit a phone (issue 18): max_tokens equal to the
reservation, the reservation sized on what is really sent, at most the reservation charged
under a hard budget (the overrun alerted), at most N messages per answer, the customer's text
to the AI capped."""

from __future__ import annotations

import pytest

from apps.billing.models import CostLedger, Reservation
from apps.billing.services import estimate_tokens
from apps.conversations.models import Message
from apps.conversations.reply_send import cap_chunks
from apps.core import events
from tests.billing.factories import BudgetFactory
from tests.conversations.helpers import deliver

pytestmark = pytest.mark.django_db

CUSTOMER = "wxid_money01"


def _say(gewe, account, text, capture):
    payload = gewe.build_text(from_wxid=CUSTOMER, text=text, to_account=account.device_id)
    deliver(account.connection, payload, capture)


def _ai_requests(openai_sim) -> list[dict]:
    return [r.json for r in openai_sim.requests if r.path.endswith("/chat/completions")]


def test_max_tokens_sent_equals_the_reservation_and_input_counts_the_system_prompt(
    account, reply_app, openai_sim, gewe, django_capture_on_commit_callbacks
):
    reply_app.system_prompt = "你是一名耐心的销售顾问。" * 40
    reply_app.save()
    _say(gewe, account, "你好，有货吗", django_capture_on_commit_callbacks)
    body = _ai_requests(openai_sim)[0]
    reservation = Reservation.objects.get(org=account.org)
    assert body["max_tokens"] == reservation.estimated_output_tokens == 512
    assert reservation.estimated_input_tokens >= estimate_tokens(body["messages"])


def test_app_max_tokens_is_both_sent_and_reserved(
    account, reply_app, openai_sim, gewe, django_capture_on_commit_callbacks
):
    reply_app.max_tokens = 200
    reply_app.save()
    _say(gewe, account, "你好", django_capture_on_commit_callbacks)
    assert _ai_requests(openai_sim)[0]["max_tokens"] == 200
    assert Reservation.objects.get(org=account.org).estimated_output_tokens == 200


def test_provider_overrun_is_charged_at_most_the_reservation_and_alerted(
    org, account, reply_app, openai_sim, gewe, django_capture_on_commit_callbacks
):
    BudgetFactory(org=org, money_limit=None, token_limit=1_000_000, action="block")
    # The simulator ignores max_tokens, like the provider that spent 3.7x the monthly limit.
    openai_sim.canned["长篇"] = "这款产品非常适合您。" * 300
    overruns = []

    def receiver(sender, **kwargs):
        overruns.append(kwargs)

    events.ai_usage_overrun.connect(receiver, dispatch_uid="test-overrun")
    try:
        _say(gewe, account, "请长篇介绍一下", django_capture_on_commit_callbacks)
    finally:
        events.ai_usage_overrun.disconnect(dispatch_uid="test-overrun")
    reservation = Reservation.objects.get(org=org)
    entry = CostLedger.objects.get(org=org, request_id=reservation.request_id)
    assert entry.output_tokens <= reservation.estimated_output_tokens
    assert entry.input_tokens <= reservation.estimated_input_tokens
    assert len(overruns) == 1
    assert overruns[0]["reported_output_tokens"] > reservation.estimated_output_tokens
    assert overruns[0]["org_id"] == org.id


def test_no_hard_budget_records_the_real_usage(
    org, account, reply_app, openai_sim, gewe, django_capture_on_commit_callbacks
):
    openai_sim.canned["长篇"] = "这款产品非常适合您。" * 300
    _say(gewe, account, "请长篇介绍一下", django_capture_on_commit_callbacks)
    reservation = Reservation.objects.get(org=org)
    entry = CostLedger.objects.get(org=org, request_id=reservation.request_id)
    assert entry.output_tokens > reservation.estimated_output_tokens


def test_answer_is_capped_at_max_chunks_ending_with_ellipsis(
    settings, account, reply_app, openai_sim, gewe, django_capture_on_commit_callbacks
):
    settings.CONVERSATION_REPLY_CHUNK_CHARS = 40
    settings.CONVERSATION_REPLY_MAX_CHUNKS = 5
    openai_sim.canned["介绍"] = "这是一句完整的介绍，内容比较长一些。" * 60
    _say(gewe, account, "介绍一下", django_capture_on_commit_callbacks)
    sent = list(Message.objects.filter(direction=Message.Direction.OUTBOUND).order_by("id"))
    assert len(sent) == 5
    assert sent[-1].text.endswith("…")
    assert all(len(m.text) <= 40 for m in sent)
    assert len(gewe.sent) == 5


def test_cap_chunks_keeps_short_answers_whole():
    assert cap_chunks(["a", "b"], max_chunks=5, limit=10) == ["a", "b"]
    assert cap_chunks(["aaaa"] * 7, max_chunks=3, limit=4) == ["aaaa", "aaaa", "aaa…"]


def test_customer_text_to_the_ai_is_capped_and_the_cut_noted(
    settings, account, reply_app, openai_sim, gewe, django_capture_on_commit_callbacks
):
    settings.CONVERSATION_AI_INPUT_MAX_CHARS = 100
    _say(gewe, account, "很" * 5000, django_capture_on_commit_callbacks)
    question = _ai_requests(openai_sim)[0]["messages"][-1]["content"]
    assert question.startswith("很" * 100)
    assert "很" * 101 not in question
    assert "100 of 5000" in question
    # The message itself is kept whole.
    inbound = Message.objects.get(direction=Message.Direction.INBOUND)
    assert len(inbound.text) == 5000
