"""Dify service API client for chat / agent / advanced-chat (Chatflow) apps.

Quirks handled here: conversations are scoped to ``user`` (keep it stable per customer);
``inputs`` only count on a conversation's first turn; streams carry ``event: ping`` frames
with no data, have no ``[DONE]`` and report failures as ``error`` events inside HTTP 200;
``message_replace`` replaces the whole answer; usage comes with decimal-string prices.

Output cap: Dify's service API has **no** per-request token limit (``/chat-messages`` takes
``query``, ``inputs``, ``response_mode``, ``user``, ``conversation_id``, ``files``; the model's
``max_tokens`` lives in the app's model configuration and no endpoint reads or sets it). The
limit that binds is the Dify app's own "Max Tokens"; set it no higher than the AI app's
``max_tokens``. ``max_tokens_input`` passes the cap as that app input variable (a workflow may
read it; inputs only count on a conversation's first turn). Usage above the reservation is
charged at most the reservation and alerted.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Any

import requests

from .ai import AIChatClient, ChatResult, StreamState, TextReplaced, frame_json, last_user_text
from .base import decode_json, parse_retry_after
from .errors import (
    AuthError,
    BadResponse,
    ConversationNotFound,
    IntegrationError,
    InvalidRequest,
    QuotaExhausted,
    RateLimited,
    Unavailable,
    UpstreamError,
)
from .sse import SSEFrame

_QUOTA_CODES = {"rate_limit_error", "provider_quota_exceeded", "quota_exceeded"}
_TRANSIENT_CODES = {"internal_server_error", "unknown", "completion_request_error"}


def dify_error(status: int | None, body: Any, headers: Any = None) -> IntegrationError:
    """Typed error for a Dify ``{"code", "message", "status"}`` body (or stream error event)."""
    if not isinstance(body, dict):
        return Unavailable(f"Dify HTTP {status} without a JSON body", status=status)
    code = str(body.get("code") or "")
    message = str(body.get("message") or code or "Dify error")
    kwargs = {"status": status, "provider_code": code or None}
    if code == "unauthorized" or status == 401 or code == "forbidden" or status == 403:
        return AuthError(message, **kwargs)
    if code == "not_found" or status == 404:
        return ConversationNotFound(message, **kwargs)
    if code == "too_many_requests":
        retry_after = parse_retry_after(headers) if headers is not None else None
        return RateLimited(message, retry_after=retry_after, **kwargs)
    # Dify's docs: rate_limit_error (HTTP 429) is plan quota / provider limit -> not retryable.
    if code in _QUOTA_CODES:
        return QuotaExhausted(message, **kwargs)
    if code in _TRANSIENT_CODES or (status is not None and status >= 500):
        return Unavailable(message, **kwargs)
    return InvalidRequest(message, **kwargs)


def _decimal(value: Any) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _usage(usage: Any) -> tuple[int | None, int | None, Decimal | None, str | None]:
    """(input tokens, output tokens, total price, currency) from ``metadata.usage``."""
    usage = usage if isinstance(usage, dict) else {}
    return (
        usage.get("prompt_tokens"),
        usage.get("completion_tokens"),
        _decimal(usage.get("total_price")),
        usage.get("currency"),
    )


class DifyClient(AIChatClient):
    """Dify chat-app client (``POST {base}/chat-messages``, base like ``…/v1``).

    ``default_user`` is used when a call gives no ``user``; production callers should pass a
    stable per-customer id (conversations belong to one user).
    """

    service = "dify"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        default_user: str = "sales-assistant",
        max_tokens: int | None = None,
        max_tokens_input: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, api_key, **kwargs)
        self.default_user = default_user
        self.max_tokens = max_tokens
        self.max_tokens_input = max_tokens_input

    def check_response(self, response: requests.Response) -> None:
        if response.status_code < 400:
            return
        try:
            body = decode_json(response)
        except BadResponse:
            body = None
        raise dify_error(response.status_code, body, response.headers)

    def _body(
        self,
        messages: list[dict],
        conversation_id: str | None,
        user: str | None,
        variables: dict,
        mode: str,
    ) -> dict:
        if self.max_tokens and self.max_tokens_input:
            variables = {**variables, self.max_tokens_input: self.max_tokens}
        return {
            "query": last_user_text(messages),
            "inputs": variables,
            "response_mode": mode,
            "user": user or self.default_user,
            "conversation_id": conversation_id or "",
        }

    def _chat(self, messages, conversation_id, user, variables, json_output) -> ChatResult:
        def parse(response: requests.Response) -> ChatResult:
            self.check_response(response)
            data = decode_json(response)
            if not isinstance(data, dict) or "answer" not in data:
                raise BadResponse("Dify answer without 'answer'")
            metadata = data.get("metadata") or {}
            input_tokens, output_tokens, cost, currency = _usage(metadata.get("usage"))
            return ChatResult(
                text=data.get("answer") or "",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                provider_cost=cost,
                currency=currency,
                provider_conversation_id=data.get("conversation_id"),
                latency_ms=int(response.elapsed.total_seconds() * 1000),
                raw=data,
            )

        body = self._body(messages, conversation_id, user, variables, "blocking")
        return self.call("chat", "/chat-messages", json_body=body, parse=parse)

    def _chat_stream(
        self, messages, conversation_id, user, variables, json_output
    ) -> Iterator[str | ChatResult]:
        body = self._body(messages, conversation_id, user, variables, "streaming")
        return self.run_stream("chat_stream", "/chat-messages", body)

    def on_frame(self, frame: SSEFrame, state: StreamState) -> Iterable[str]:
        if frame.data is None or frame.event == "ping":
            return ()  # keep-alive: `event: ping` with no data line
        data = frame_json(frame.data)
        event = data.get("event")
        if data.get("conversation_id"):
            state.conversation_id = data["conversation_id"]
        if data.get("task_id"):
            state.raw["task_id"] = data["task_id"]
        if event in ("message", "agent_message"):
            answer = data.get("answer") or ""
            if answer:
                state.parts.append(answer)
                return (answer,)
        elif event == "message_replace":
            state.parts = [data.get("answer") or ""]
            return (TextReplaced(state.parts[0]),)
        elif event == "message_end":
            metadata = data.get("metadata") or {}
            (state.input_tokens, state.output_tokens, state.cost, state.currency) = _usage(
                metadata.get("usage")
            )
            state.raw["message_id"] = data.get("message_id") or data.get("id")
            state.complete = state.stop = True
        elif event == "error":
            raise dify_error(data.get("status") or 200, data)
        elif event == "workflow_finished":
            result = data.get("data") or {}
            if result.get("status") in ("failed", "stopped"):
                raise UpstreamError(
                    f"Dify workflow {result.get('status')}: {result.get('error')}", status=200
                )
            state.complete = state.stop = True
        return ()

    def stop(self, task_id: str, user: str | None = None) -> None:
        """Ask Dify to stop an in-flight streamed answer (ignored if ``user`` differs)."""
        self.call(
            "stop",
            f"/chat-messages/{task_id}/stop",
            json_body={"user": user or self.default_user},
            parse=self.check_response,
        )
