"""AI clients (OpenAI-compatible, DashScope, FastGPT, Dify) against their simulators."""

from __future__ import annotations

import threading
import time

import pytest

from apps.integrations.clients.ai import (
    ChatResult,
    analyze_intent,
    analyze_sentiment,
    batch,
)
from apps.integrations.clients.errors import (
    AuthError,
    BadResponse,
    ContentBlocked,
    InvalidRequest,
    QuotaExhausted,
    RateLimited,
    RequestTimeout,
    StreamBroken,
    Unavailable,
)
from apps.integrations.clients.openai_compat import OpenAICompatClient


def drain(stream) -> tuple[list[str], ChatResult]:
    items = list(stream)
    assert isinstance(items[-1], ChatResult)
    assert all(isinstance(i, str) for i in items[:-1])
    return items[:-1], items[-1]


@pytest.fixture
def openai(fresh_sims, records, sleeps):
    sim = fresh_sims["openai"]
    client = OpenAICompatClient(
        fresh_sims.urls["openai"],
        "sk-sim-openai",
        "gpt-4o-mini",
        recorder=records.append,
        sleep=sleeps.append,
    )
    return sim, client


@pytest.fixture
def dashscope(fresh_sims, records, sleeps):
    sim = fresh_sims["dashscope"]
    client = OpenAICompatClient(
        fresh_sims.urls["dashscope"],
        "sk-sim-dashscope",
        "qwen3-plus",
        flavor="dashscope",
        recorder=records.append,
        sleep=sleeps.append,
    )
    return sim, client


# -- OpenAI-compatible ------------------------------------------------------------------------


def test_openai_blocking_chat_with_usage(openai, records):
    sim, client = openai
    history = [{"role": "system", "content": "你是销售"}, {"role": "user", "content": "价格多少"}]
    result = client.chat(history, user="org1:wxid_a")
    assert result.text == "echo: 价格多少"
    assert (result.input_tokens, result.output_tokens) == (8, 10)  # sim: 1 token per char
    assert result.provider_cost is None and result.provider_conversation_id is None
    body = sim.requests[-1].json
    assert body["messages"] == history and body["user"] == "org1:wxid_a"
    assert body["stream"] is False and "stream_options" not in body
    assert sim.requests[-1].header("Authorization") == "Bearer sk-sim-openai"
    assert records[-1].ok and records[-1].request_id == "chatcmpl-sim000001"


def test_openai_stream_requests_usage_and_reassembles_multibyte_text(openai, records):
    sim, client = openai
    sim.canned["报价"] = "您好😀，标准版每年九千八百元。"
    deltas, result = drain(client.chat_stream("请给我报价"))
    assert "".join(deltas) == result.text == "您好😀，标准版每年九千八百元。"
    assert len(deltas) > 3  # really streamed in pieces (and split across TCP writes)
    assert (result.input_tokens, result.output_tokens) == (5, 15)
    assert sim.requests[-1].json["stream_options"] == {"include_usage": True}
    assert len(records) == 1 and records[0].operation == "chat_stream" and records[0].ok


def test_openai_usage_absent_without_include_usage(openai):
    sim, client = openai
    client.extra_body = {"stream_options": {"include_usage": False}}
    _, result = drain(client.chat_stream("hi"))
    assert result.text == "echo: hi" and result.input_tokens is None


def test_openai_rate_limit_then_success(openai, records, sleeps):
    sim, client = openai
    sim.add_fault("rate_limit", "/chat/completions", retry_after=2, times=1)
    assert client.chat("hi").text == "echo: hi"
    assert [r.error_class for r in records] == ["RateLimited", None]
    assert 2.0 <= sleeps[0] <= 2.5


def test_openai_insufficient_quota_is_not_retried(openai, records, sleeps):
    sim, client = openai
    sim.add_fault("quota", "/chat/completions")
    with pytest.raises(QuotaExhausted) as info:
        client.chat("hi")
    assert info.value.status == 429 and info.value.provider_code == "insufficient_quota"
    assert not info.value.retryable and sleeps == [] and len(records) == 1


def test_openai_invalid_key(fresh_sims):
    client = OpenAICompatClient(fresh_sims.urls["openai"], "sk-wrong", "gpt-4o-mini")
    with pytest.raises(AuthError) as info:
        client.chat("hi")
    assert info.value.status == 401 and info.value.provider_code == "invalid_api_key"


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, InvalidRequest),
        (403, AuthError),
        (404, InvalidRequest),
        (500, Unavailable),
        (503, Unavailable),
    ],
)
def test_openai_status_mapping(openai, records, status, error_class):
    sim, client = openai
    sim.add_fault("error", "/chat/completions", status=status)
    with pytest.raises(error_class):
        client.chat("hi")
    assert len(records) == (3 if error_class is Unavailable else 1)


def test_openai_html_502_from_proxy(openai, records):
    sim, client = openai
    sim.add_fault("garbage", "/chat/completions", status=502, times=1)
    assert client.chat("hi").text == "echo: hi"
    assert records[0].error_class == "Unavailable" and records[0].http_status == 502


def test_openai_non_json_success_is_bad_response(openai):
    sim, client = openai
    sim.add_fault("garbage", "/chat/completions", status=200, times=1)
    with pytest.raises(BadResponse):
        client.chat("hi")


def test_openai_cut_stream_raises_stream_broken_with_partial_text(openai, records):
    sim, client = openai
    sim.add_fault("cut", "/chat/completions", after_chunks=3, times=1)
    received = []
    with pytest.raises(StreamBroken) as info:
        for item in client.chat_stream("abcdefghijklmnop"):
            received.append(item)
    assert info.value.partial_text == "echo: ab" == "".join(received)
    assert info.value.retryable  # the caller may retry; the client never does it blindly
    assert len(sim.requests) == 1
    assert records[-1].error_class == "StreamBroken"


def test_openai_mid_stream_error_frame(openai):
    sim, client = openai
    sim.add_fault("stream_error", "/chat/completions", after_chunks=2, times=1)
    with pytest.raises(Unavailable, match="server had an error") as info:
        list(client.chat_stream("abcdefghijklmnop"))
    assert not isinstance(info.value, StreamBroken)


def test_openai_stalled_stream_times_out(fresh_sims, records):
    sim = fresh_sims["openai"]
    sim.add_fault("stall", "/chat/completions", after_chunks=2, delay=3.0, times=1)
    client = OpenAICompatClient(
        fresh_sims.urls["openai"], "sk-sim-openai", "m", timeout=(1.0, 0.3), recorder=records.append
    )
    started = time.monotonic()
    with pytest.raises(StreamBroken) as info:
        list(client.chat_stream("abcdefghijklmnop"))
    assert time.monotonic() - started < 2.0
    assert info.value.partial_text == "echo"


def test_openai_blocking_timeout(fresh_sims, records, sleeps):
    sim = fresh_sims["openai"]
    sim.add_fault("hang", "/chat/completions", delay=2.0, times=1)
    client = OpenAICompatClient(
        fresh_sims.urls["openai"],
        "sk-sim-openai",
        "m",
        timeout=(1.0, 0.3),
        recorder=records.append,
        sleep=sleeps.append,
    )
    assert client.chat("hi").text == "echo: hi"  # first attempt timed out, second answered
    assert [r.error_class for r in records] == ["RequestTimeout", None]
    assert isinstance(RequestTimeout("x"), Unavailable)


# -- DashScope ------------------------------------------------------------------------------


def test_dashscope_qwen3_blocking_disables_thinking(dashscope):
    sim, client = dashscope
    assert client.chat("hi").text == "echo: hi"
    assert sim.requests[-1].json["enable_thinking"] is False
    assert sim.requests[-1].path == "/chat/completions"


def test_dashscope_moderation_fails_mid_stream(dashscope, records):
    sim, client = dashscope
    sim.add_fault("moderation", "/chat/completions", after_chunks=2, times=1)
    with pytest.raises(ContentBlocked) as info:
        list(client.chat_stream("abcdefghijklmnop"))
    assert info.value.provider_code == "data_inspection_failed"
    assert info.value.partial_text == "echo: ab"
    assert not info.value.retryable and len(records) == 1


def test_dashscope_insufficient_quota_means_throttling(dashscope, records, sleeps):
    sim, client = dashscope
    sim.add_fault("rate_limit", "/chat/completions", code="insufficient_quota", times=1)
    assert client.chat("hi").text == "echo: hi"
    assert records[0].error_class == "RateLimited"


def test_dashscope_arrearage_is_quota_exhausted(dashscope):
    sim, client = dashscope
    sim.add_fault("quota", "/chat/completions")
    with pytest.raises(QuotaExhausted) as info:
        client.chat("hi")
    assert info.value.provider_code == "Arrearage" and info.value.request_id


# -- analysis and batch ---------------------------------------------------------------------


def test_analyze_intent_and_sentiment_structured_output(openai):
    sim, client = openai
    intent = analyze_intent(client, "随便聊聊")
    assert (intent.intent, intent.confidence, intent.fallback) == ("other", 0.0, True)  # echo
    sim.canned["我想买"] = 'Sure! ```json\n{"intent": "purchase", "confidence": 0.92}\n```'
    intent = analyze_intent(client, "我想买")
    assert (intent.intent, intent.confidence, intent.fallback) == ("purchase", 0.92, False)
    assert sim.requests[-1].json["response_format"] == {"type": "json_object"}
    assert sim.requests[-1].json["messages"][0]["role"] == "system"
    sim.canned["太差"] = '{"sentiment": "negative", "score": -0.7}'
    sentiment = analyze_sentiment(client, "服务太差")
    assert (sentiment.sentiment, sentiment.score, sentiment.fallback) == ("negative", -0.7, False)
    sim.canned["还行"] = '{"sentiment": "ecstatic", "score": 5}'
    fallback = analyze_sentiment(client, "还行")
    assert (fallback.sentiment, fallback.score, fallback.fallback) == ("neutral", 0.0, True)
    sim.canned["一般"] = '{"intent": "purchase", "confidence": "very"}'
    assert analyze_intent(client, "一般").fallback


def test_batch_bounds_concurrency_keeps_order_and_collects_errors(openai):
    sim, client = openai
    sim.add_fault("latency", "/chat/completions", delay=0.1)
    lock = threading.Lock()
    active, peak = [0], [0]

    def ask(text: str) -> str:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            if text == "q5":
                raise RateLimited("slow down")
            return client.chat(text).text
        finally:
            with lock:
                active[0] -= 1

    results = batch(ask, [f"q{i}" for i in range(12)], concurrency=4)
    assert results[:5] == [f"echo: q{i}" for i in range(5)]
    assert isinstance(results[5], RateLimited)
    assert results[6:] == [f"echo: q{i}" for i in range(6, 12)]
    assert peak[0] == 4
