"""OpenAI-compatible chat completions (OpenAI, DashScope/Bailian compatible mode, Ark, ...).

``flavor="dashscope"`` switches the 429/400 code meanings to DashScope's: there
``insufficient_quota`` is TPM throttling (retry), while arrears are non-retryable.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import requests

from .ai import AIChatClient, ChatResult, StreamState, frame_json
from .base import decode_json, parse_retry_after
from .errors import (
    AuthError,
    BadResponse,
    ContentBlocked,
    IntegrationError,
    InvalidRequest,
    QuotaExhausted,
    RateLimited,
    Unavailable,
)
from .sse import SSEFrame

_BILLING_CODES = {
    "insufficient_quota",  # OpenAI: billing (DashScope: throttling, see below)
    "arrearage",
    "prepaidbilloverdue",
    "postpaidbilloverdue",
    "commoditynotpurchased",
    "billing_hard_limit_reached",
}
_MODERATION_CODES = {"data_inspection_failed", "datainspectionfailed", "content_filter"}


def openai_error(
    status: int | None, body: Any, *, flavor: str = "openai", headers: Any = None
) -> IntegrationError:
    """Typed error for an OpenAI-style ``{"error": {...}}`` body (or a non-JSON one)."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {"message": str(error)} if error else {}
    code = str(error.get("code") or error.get("type") or "")
    message = str(error.get("message") or f"HTTP {status}")
    request_id = body.get("request_id") if isinstance(body, dict) else None
    kwargs = {"status": status, "provider_code": code or None, "request_id": request_id}
    low = code.lower().replace("-", "_")
    if low in _MODERATION_CODES:
        return ContentBlocked(message, **kwargs)
    if status == 429 or low in ("rate_limit_exceeded", "limit_requests", "limit_burst_rate"):
        quota = low in _BILLING_CODES and not (
            flavor == "dashscope" and low == "insufficient_quota"
        )
        if quota:
            return QuotaExhausted(message, **kwargs)
        retry_after = parse_retry_after(headers) if headers is not None else None
        return RateLimited(message, retry_after=retry_after, **kwargs)
    if low in _BILLING_CODES:
        return QuotaExhausted(message, **kwargs)
    if status in (401, 403) or low in ("invalid_api_key", "access_denied"):
        return AuthError(message, **kwargs)
    if status is not None and status >= 500:
        return Unavailable(message, **kwargs)
    if status is not None and status >= 400:
        return InvalidRequest(message, **kwargs)
    # An error object inside an HTTP 200 stream: treat unknown codes as transient server errors.
    return Unavailable(message, **kwargs)


class OpenAICompatClient(AIChatClient):
    """Chat completions at ``{base_url}/chat/completions`` (base like ``…/v1`` or
    ``…/compatible-mode/v1``). OpenAI keeps no sessions: send the full history each call."""

    service = "openai"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        *,
        flavor: str = "openai",
        extra_body: dict | None = None,
        temperature: float | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, api_key, **kwargs)
        if flavor not in ("openai", "dashscope"):
            raise ValueError("flavor must be 'openai' or 'dashscope'")
        self.model = model
        self.flavor = flavor
        self.service = "dashscope" if flavor == "dashscope" else "openai"
        self.extra_body = dict(extra_body or {})
        self.temperature = temperature

    def check_response(self, response: requests.Response) -> None:
        if response.status_code < 400:
            return
        try:
            body = decode_json(response)
        except BadResponse:
            body = None  # proxy HTML: classify by status alone
        raise openai_error(response.status_code, body, flavor=self.flavor, headers=response.headers)

    def _body(
        self, messages: list[dict], user: str | None, json_output: bool, stream: bool
    ) -> dict:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": stream}
        if stream:
            # Without this no usage is ever streamed (and a cut stream never has usage).
            body["stream_options"] = {"include_usage": True}
        elif self.flavor == "dashscope" and self.model.startswith("qwen3"):
            # Qwen3 rejects non-streamed calls unless thinking is off (400 invalid_parameter).
            body["enable_thinking"] = False
        if user:
            body["user"] = user
        if json_output:
            body["response_format"] = {"type": "json_object"}
        if self.temperature is not None:
            body["temperature"] = self.temperature
        body.update(self.extra_body)
        return body

    def _chat(self, messages, conversation_id, user, variables, json_output) -> ChatResult:
        def parse(response: requests.Response) -> ChatResult:
            self.check_response(response)
            data = decode_json(response)
            if not isinstance(data, dict):
                raise BadResponse("chat completion is not an object")
            if data.get("error"):
                raise openai_error(response.status_code, data, flavor=self.flavor)
            try:
                choice = data["choices"][0]
                text = choice["message"].get("content") or ""
            except (KeyError, IndexError, TypeError, AttributeError):
                raise BadResponse("chat completion without choices[0].message") from None
            if choice.get("finish_reason") == "content_filter":
                raise ContentBlocked("answer removed by the content filter")
            usage = data.get("usage") or {}
            return ChatResult(
                text=text,
                input_tokens=usage.get("prompt_tokens"),
                output_tokens=usage.get("completion_tokens"),
                latency_ms=int(response.elapsed.total_seconds() * 1000),
                finish_reason=choice.get("finish_reason"),
                raw=data,
            )

        body = self._body(messages, user, json_output, stream=False)
        return self.call("chat", "/chat/completions", json_body=body, parse=parse)

    def _chat_stream(
        self, messages, conversation_id, user, variables, json_output
    ) -> Iterator[str | ChatResult]:
        body = self._body(messages, user, json_output, stream=True)
        return self.run_stream("chat_stream", "/chat/completions", body)

    def on_frame(self, frame: SSEFrame, state: StreamState) -> Iterable[str]:
        if frame.data is None:
            return ()
        if frame.data.strip() == "[DONE]":
            state.complete = state.stop = True
            return ()
        chunk = frame_json(frame.data)
        if frame.event == "error" or "error" in chunk:
            raise openai_error(
                200, chunk if "error" in chunk else {"error": chunk}, flavor=self.flavor
            )
        usage = chunk.get("usage")
        if usage:
            # Compatible servers differ on where usage goes; the last non-null one wins.
            state.input_tokens = usage.get("prompt_tokens")
            state.output_tokens = usage.get("completion_tokens")
        deltas = []
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            # reasoning_content (thinking models) is never part of the customer-facing reply.
            if delta.get("content"):
                state.parts.append(delta["content"])
                deltas.append(delta["content"])
            if choice.get("finish_reason"):
                state.finish_reason = choice["finish_reason"]
                if state.finish_reason == "content_filter":
                    raise ContentBlocked(
                        "answer removed by the content filter", partial_text=state.text
                    )
        return deltas
