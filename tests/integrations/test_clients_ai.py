"""AI clients (OpenAI-compatible, DashScope, FastGPT, Dify) against their simulators."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from apps.integrations.clients.ai import (
    ChatResult,
    TextReplaced,
    analyze_intent,
    analyze_sentiment,
    batch,
)
from apps.integrations.clients.dify import DifyClient
from apps.integrations.clients.errors import (
    AuthError,
    BadResponse,
    ContentBlocked,
    ConversationNotFound,
    InvalidRequest,
    QuotaExhausted,
    RateLimited,
    RequestTimeout,
    StreamBroken,
    Unavailable,
    UpstreamError,
)
from apps.integrations.clients.fastgpt import FastGPTClient, sum_node_usage
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


# -- FastGPT --------------------------------------------------------------------------------


@pytest.fixture
def fastgpt(fresh_sims, records, sleeps):
    sim = fresh_sims["fastgpt"]
    client = FastGPTClient(
        fresh_sims.urls["fastgpt"], "fastgpt-sim-key", recorder=records.append, sleep=sleeps.append
    )
    return sim, client


def expected_fastgpt_usage(question: str, prompt: int, answer: str) -> tuple[int, int]:
    # classifier (q + 20, 3) + container's own (10, 2) + nested chat node (prompt, answer).
    return len(question) + 20 + 10 + prompt, 3 + 2 + len(answer)


def test_fastgpt_blocking_sums_nested_node_tokens_not_the_placeholder(fastgpt):
    sim, client = fastgpt
    result = client.chat(
        "你好呀", conversation_id="org1:c1", user="wxid_a", variables={"customer": "张三"}
    )
    assert result.text == "echo: 你好呀"
    assert result.raw["usage"] == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 1}
    assert (result.input_tokens, result.output_tokens) == expected_fastgpt_usage(
        "你好呀", 3, "echo: 你好呀"
    )
    assert result.provider_conversation_id == "org1:c1" and result.provider_cost is None
    body = sim.requests[-1].json
    assert body["detail"] is True and body["chatId"] == "org1:c1"
    assert body["variables"] == {"customer": "张三"} and body["customUid"] == "wxid_a"


def test_fastgpt_chat_id_sends_only_the_last_message_and_keeps_history(fastgpt):
    sim, client = fastgpt
    client.chat("第一句", conversation_id="c2")
    history = [
        {"role": "user", "content": "第一句"},
        {"role": "assistant", "content": "x"},
        {"role": "user", "content": "第二句"},
    ]
    result = client.chat(history, conversation_id="c2")
    assert sim.requests[-1].json["messages"] == [{"role": "user", "content": "第二句"}]
    # The nested chat node saw the stored history: 3 + 9 + 3 characters.
    assert result.input_tokens == expected_fastgpt_usage("第二句", 15, "echo: 第二句")[0]
    assert len(sim.state()["chats"]["c2"]) == 4


def test_fastgpt_stream_reads_usage_after_done(fastgpt, records):
    sim, client = fastgpt
    deltas, result = drain(client.chat_stream("流式问题", conversation_id="c3"))
    assert "".join(deltas) == result.text == "echo: 流式问题"
    assert "" not in deltas  # the empty keep-alive answer chunk is not a delta
    assert (result.input_tokens, result.output_tokens) == expected_fastgpt_usage(
        "流式问题", 4, "echo: 流式问题"
    )
    assert result.raw["flowResponses"][1]["toolDetail"][0]["moduleName"] == "AI 对话"
    assert result.provider_conversation_id == "c3"
    assert len(records) == 1 and records[0].ok


def test_fastgpt_stream_cut_after_done_keeps_text_without_usage(fastgpt):
    sim, client = fastgpt
    # Frames: flowNodeStatus, keep-alive, 4 pieces, stop chunk, [DONE], flowResponses.
    sim.add_fault("cut", "/v1/chat/completions", after_chunks=8, times=1)
    _, result = drain(client.chat_stream("abcdefgh"))
    assert result.text == "echo: abcdefgh" and result.input_tokens is None


def test_fastgpt_stream_cut_before_done_is_broken(fastgpt):
    sim, client = fastgpt
    sim.add_fault("cut", "/v1/chat/completions", after_chunks=3, times=1)
    with pytest.raises(StreamBroken) as info:
        list(client.chat_stream("abcdefgh"))
    assert info.value.partial_text == "echo"


def test_fastgpt_stream_error_event(fastgpt):
    sim, client = fastgpt
    sim.add_fault(
        "stream_error",
        "/v1/chat/completions",
        after_chunks=1,
        message="LLM request failed",
        times=1,
    )
    with pytest.raises(Unavailable, match="LLM request failed"):
        list(client.chat_stream("abcdefgh"))


def test_fastgpt_http_500_error_codes(fastgpt, records, sleeps):
    sim, client = fastgpt
    sim.add_fault("rate_limit", "/v1/chat/completions", retry_after=4, times=1)
    assert client.chat("hi").text == "echo: hi"
    assert records[0].http_status == 500 and records[0].error_class == "RateLimited"
    assert 4.0 <= sleeps[0] <= 5.0  # parsed from "try again in 4 seconds"

    for code, error_class in [
        (500002, QuotaExhausted),
        (510, QuotaExhausted),
        (506002, QuotaExhausted),
    ]:
        sim.add_fault("quota", "/v1/chat/completions", code=str(code), times=1)
        with pytest.raises(error_class) as info:
            client.chat("hi")
        assert info.value.provider_code == str(code) and info.value.status == 500
    sim.add_fault("auth", "/v1/chat/completions", times=1)
    with pytest.raises(AuthError):
        client.chat("hi")
    with pytest.raises(InvalidRequest, match="messages is empty"):
        client.chat([])
    sim.add_fault("error", "/v1/chat/completions", message="upstream busy", times=1)
    assert client.chat("hi").text == "echo: hi"  # free-text 500: transient, retried


def test_fastgpt_account_key_needs_app_id(fresh_sims):
    url = fresh_sims.urls["fastgpt"]
    with pytest.raises(InvalidRequest, match="app key"):
        FastGPTClient(url, "fastgpt-sim-account").chat("hi")
    assert FastGPTClient(url, "fastgpt-sim-account", app_id="app1").chat("hi").text == "echo: hi"


def test_fastgpt_workflow_error_with_http_200(fastgpt):
    sim, client = fastgpt
    body = {
        "id": "",
        "model": "",
        "error": "AI 对话 节点失败",
        "usage": {},
        "choices": [{"message": {"role": "assistant", "content": ""}, "index": 0}],
    }
    sim.add_fault("error", "/v1/chat/completions", status=200, body=body, times=1)
    with pytest.raises(UpstreamError):
        client.chat("hi")


def test_sum_node_usage_handles_legacy_and_nested_shapes():
    nodes = [
        {"tokens": 50},
        {
            "inputTokens": 5,
            "outputTokens": 1,
            "pluginDetail": [
                {
                    "inputTokens": 7,
                    "outputTokens": 2,
                    "childrenResponses": [{"inputTokens": 11, "outputTokens": 3}],
                }
            ],
        },
    ]
    assert sum_node_usage(nodes) == (73, 6)
    assert sum_node_usage(None) == (0, 0)


# -- Dify -----------------------------------------------------------------------------------


@pytest.fixture
def dify(fresh_sims, records, sleeps):
    sim = fresh_sims["dify"]
    client = DifyClient(
        fresh_sims.urls["dify"], "app-sim-dify", recorder=records.append, sleep=sleeps.append
    )
    return sim, client


def test_dify_blocking_usage_price_and_conversation(dify):
    sim, client = dify
    first = client.chat("你好", user="org1:wxid_a", variables={"tier": "vip"})
    assert first.text == "echo: 你好"
    assert (first.input_tokens, first.output_tokens) == (2, 8)
    # 2 x 0.001 x 0.001 + 8 x 0.002 x 0.001
    assert first.provider_cost == Decimal("0.0000180") and first.currency == "USD"
    conversation = first.provider_conversation_id
    second = client.chat(
        "再问", user="org1:wxid_a", conversation_id=conversation, variables={"tier": "changed"}
    )
    assert second.provider_conversation_id == conversation
    assert second.input_tokens == 2 + 8 + 2  # history included
    assert sim.state()["conversations"][conversation]["inputs"] == {"tier": "vip"}  # frozen
    body = sim.requests[-1].json
    assert body["response_mode"] == "blocking" and body["query"] == "再问"


def test_dify_conversation_of_another_user_is_not_found(dify):
    sim, client = dify
    conversation = client.chat("hi", user="a").provider_conversation_id
    with pytest.raises(ConversationNotFound) as info:
        client.chat("hi", user="b", conversation_id=conversation)
    assert info.value.status == 404 and not info.value.retryable


def test_dify_stream_ignores_pings_and_reads_message_end(dify, records):
    sim, client = dify
    sim.ping_every = 1
    deltas, result = drain(client.chat_stream("流式你好", user="u"))
    assert "".join(deltas) == result.text == "echo: 流式你好"
    assert result.provider_cost == Decimal("0.0000240")  # 4 x 0.001e-3 + 10 x 0.002e-3
    assert result.provider_conversation_id and result.raw["task_id"]
    assert records[-1].ok


def test_dify_chatflow_stream(dify):
    sim, client = dify
    sim.chatflow = True
    _, result = drain(client.chat_stream("hi", user="u"))
    assert result.text == "echo: hi" and result.input_tokens == 2


def test_dify_message_replace(dify):
    sim, client = dify
    sim.replace_with = "抱歉，无法回答。"
    deltas, result = drain(client.chat_stream("敏感问题", user="u"))
    assert isinstance(deltas[-1], TextReplaced) and deltas[-1] == "抱歉，无法回答。"
    assert result.text == "抱歉，无法回答。"


def test_dify_error_event_inside_http_200_stream(dify, records):
    sim, client = dify
    sim.add_fault("stream_error", "/chat-messages", after_chunks=1, times=1)
    with pytest.raises(Unavailable) as info:
        list(client.chat_stream("abcdefgh", user="u"))
    assert info.value.provider_code == "internal_server_error"
    assert records[-1].http_status == 200  # the HTTP status; the event said 500


def test_dify_cut_stream_has_no_done_so_eof_before_message_end_is_broken(dify):
    sim, client = dify
    sim.add_fault("cut", "/chat-messages", after_chunks=3, times=1)
    with pytest.raises(StreamBroken):
        list(client.chat_stream("abcdefghijkl", user="u"))


def test_dify_429_meanings(dify, records, sleeps):
    sim, client = dify
    sim.add_fault("rate_limit", "/chat-messages", retry_after=1, times=1)
    assert client.chat("hi", user="u").text == "echo: hi"
    assert records[0].error_class == "RateLimited" and 1.0 <= sleeps[0] <= 1.25
    sim.add_fault("quota", "/chat-messages", times=1)
    with pytest.raises(QuotaExhausted) as info:
        client.chat("hi", user="u")
    assert info.value.provider_code == "rate_limit_error" and info.value.status == 429


def test_dify_auth_and_validation(dify, fresh_sims):
    sim, client = dify
    with pytest.raises(AuthError) as info:
        DifyClient(fresh_sims.urls["dify"], "app-wrong").chat("hi", user="u")
    assert info.value.provider_code == "unauthorized"
    with pytest.raises(InvalidRequest, match="valid uuid"):
        client.chat("hi", user="u", conversation_id="not-a-uuid")
    sim.add_fault("error", "/chat-messages", status=400, code="provider_quota_exceeded", times=1)
    with pytest.raises(QuotaExhausted):
        client.chat("hi", user="u")


def test_dify_stop(dify):
    sim, client = dify
    client.stop("task-123", user="u")
    assert sim.stopped_tasks == ["task-123"]
    assert sim.requests[-1].json == {"user": "u"}
