"""FastGPT app API client (``POST {base}/v1/chat/completions`` with base ``<host>/api``).

Quirks handled here: the top-level ``usage`` is a 1/1/1 placeholder, so every call uses
``detail=true`` and sums node tokens (recursively: container nodes do not aggregate tokens);
practically every error is HTTP 500 with the meaning in the body ``code`` (even 429); in
streams, node responses (``flowResponses``) arrive *after* ``[DONE]``.

Output cap: the body is OpenAI-style, so ``max_tokens`` (what the turn reserved) is sent with
every call. FastGPT's chat endpoint reads only its own fields (``model``, ``temperature`` ...
are ignored: the workflow's AI node decides, see ``specs/ai-providers.md`` 1.2), so the limit
that binds is the AI node's own "max response tokens"; set it no higher than the AI app's
``max_tokens``. ``max_tokens_variable`` also passes the cap as that app variable, for workflows
that read it. Usage above the reservation is charged at most the reservation and alerted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import Any

import requests

from .ai import AIChatClient, ChatResult, StreamState, frame_json, last_user_text
from .base import decode_json
from .errors import (
    AuthError,
    BadResponse,
    IntegrationError,
    InvalidRequest,
    QuotaExhausted,
    RateLimited,
    Unavailable,
    UpstreamError,
)
from .sse import SSEFrame

_AUTH = {403, 514, 506000, 506001}
_AUTH_TEXT = {"unAuthorization", "unAuthApiKey", "openapiUnExist", "openapiUnAuth"}
_QUOTA = {510, 500002, 506002}
_QUOTA_TEXT = {"insufficientQuota", "aiPointsNotEnough", "openapiExceedLimit"}
# Free-text 500s that describe a bad request rather than a transient failure.
_INVALID_HINTS = ("is empty", "not exist", "Key is error", "不存在", "invalid", "required")
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?) ?s", re.IGNORECASE)
_CHILD_KEYS = ("childrenResponses", "toolDetail", "pluginDetail")


def fastgpt_error(status: int | None, body: Any) -> IntegrationError:
    """Typed error for a FastGPT ``{code, statusText, message, data}`` body."""
    if not isinstance(body, dict):
        return Unavailable(f"FastGPT HTTP {status} without a JSON body", status=status)
    code = body.get("code")
    status_text = str(body.get("statusText") or "")
    message = str(body.get("message") or status_text or "FastGPT error")
    kwargs = {"status": status, "provider_code": None if code is None else str(code)}
    try:
        code = int(code)
    except (TypeError, ValueError):
        code = None
    if code in _AUTH or status_text in _AUTH_TEXT:
        return AuthError(message, **kwargs)
    if code in _QUOTA or status_text in _QUOTA_TEXT:
        return QuotaExhausted(message, **kwargs)
    if code == 429:
        match = _TRY_AGAIN.search(message)
        return RateLimited(message, retry_after=float(match.group(1)) if match else None, **kwargs)
    if any(hint.lower() in message.lower() for hint in _INVALID_HINTS):
        return InvalidRequest(message, **kwargs)
    return Unavailable(message, **kwargs)


def sum_node_usage(nodes: Any) -> tuple[int, int]:
    """(input, output) tokens over all nodes, nested ones included. A node reporting only a
    total (older builds) counts it as input: the split is unknown and input is the bulk."""
    total_in = total_out = 0
    for node in nodes if isinstance(nodes, list) else []:
        if not isinstance(node, dict):
            continue
        if node.get("inputTokens") is not None or node.get("outputTokens") is not None:
            total_in += int(node.get("inputTokens") or 0)
            total_out += int(node.get("outputTokens") or 0)
        elif node.get("tokens"):
            total_in += int(node["tokens"])
        for key in _CHILD_KEYS:
            child_in, child_out = sum_node_usage(node.get(key))
            total_in += child_in
            total_out += child_out
    return total_in, total_out


def _content_text(content: Any) -> str:
    # With detail=true and several assistant outputs, content is a list of parts.
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                parts.append(text.get("content", "") if isinstance(text, dict) else text or "")
            else:
                parts.append(str(part))
        return "".join(parts)
    return content or ""


class FastGPTClient(AIChatClient):
    """FastGPT app client. Use an app-specific key; an account key needs ``app_id``."""

    service = "fastgpt"

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        app_id: str | None = None,
        max_tokens: int | None = None,
        max_tokens_variable: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, api_key, **kwargs)
        self.app_id = app_id
        self.max_tokens = max_tokens
        self.max_tokens_variable = max_tokens_variable

    def check_response(self, response: requests.Response) -> None:
        if response.status_code < 400:
            return
        try:
            body = decode_json(response)
        except BadResponse:
            body = None
        raise fastgpt_error(response.status_code, body)

    def _body(
        self,
        messages: list[dict],
        conversation_id: str | None,
        user: str | None,
        variables: dict,
        stream: bool,
    ) -> dict:
        if self.max_tokens and self.max_tokens_variable:
            variables = {**variables, self.max_tokens_variable: self.max_tokens}
        body: dict[str, Any] = {"stream": stream, "detail": True, "variables": variables}
        if self.max_tokens:
            body["max_tokens"] = self.max_tokens
        if conversation_id is not None:
            body["chatId"] = conversation_id
            # With a chatId FastGPT uses its stored history and only the last message.
            messages = [{"role": "user", "content": last_user_text(messages)}]
        body["messages"] = messages
        if user:
            body["customUid"] = user
        if self.app_id:
            body["appId"] = self.app_id
        return body

    def _chat(self, messages, conversation_id, user, variables, json_output) -> ChatResult:
        def parse(response: requests.Response) -> ChatResult:
            self.check_response(response)
            data = decode_json(response)
            if not isinstance(data, dict):
                raise BadResponse("FastGPT answer is not an object")
            if data.get("error"):
                # The last node failed: HTTP 200, maybe empty content.
                raise UpstreamError(f"FastGPT workflow failed: {data['error']}", status=200)
            try:
                choice = data["choices"][0]
            except (KeyError, IndexError, TypeError):
                raise BadResponse("FastGPT answer without choices") from None
            input_tokens, output_tokens = sum_node_usage(data.get("responseData"))
            has_nodes = bool(data.get("responseData"))
            return ChatResult(
                text=_content_text((choice.get("message") or {}).get("content")),
                input_tokens=input_tokens if has_nodes else None,
                output_tokens=output_tokens if has_nodes else None,
                provider_conversation_id=conversation_id or data.get("id") or None,
                latency_ms=int(response.elapsed.total_seconds() * 1000),
                finish_reason=choice.get("finish_reason"),
                raw=data,
            )

        body = self._body(messages, conversation_id, user, variables, stream=False)
        return self.call("chat", "/v1/chat/completions", json_body=body, parse=parse)

    def _chat_stream(
        self, messages, conversation_id, user, variables, json_output
    ) -> Iterator[str | ChatResult]:
        body = self._body(messages, conversation_id, user, variables, stream=True)
        return self._stream_with_id("chat_stream", body, conversation_id)

    def _stream_with_id(
        self, operation: str, body: dict, conversation_id: str | None
    ) -> Iterator[str | ChatResult]:
        for item in self.run_stream(operation, "/v1/chat/completions", body):
            if isinstance(item, ChatResult) and conversation_id:
                item = replace(item, provider_conversation_id=conversation_id)
            yield item

    def check_stream_start(self, response: requests.Response) -> None:
        # Auth/balance failures can come back as HTTP 200 JSON instead of an event stream.
        if "text/event-stream" not in response.headers.get("Content-Type", ""):
            body = decode_json(response)
            if isinstance(body, dict) and body.get("code") not in (None, 200):
                raise fastgpt_error(response.status_code, body)
            raise BadResponse("FastGPT stream answered without an event stream")

    def on_frame(self, frame: SSEFrame, state: StreamState) -> Iterable[str]:
        if frame.data is None:
            return ()
        event = frame.event or "answer"
        if frame.data.strip() == "[DONE]":
            # Usage (flowResponses) may still follow: keep reading until the socket closes.
            state.complete = True
            return ()
        if event in ("answer", "fastAnswer"):
            chunk = frame_json(frame.data)
            deltas = []
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:  # empty content = the 10 s keep-alive
                    state.parts.append(content)
                    deltas.append(content)
                if choice.get("finish_reason"):
                    state.finish_reason = choice["finish_reason"]
            return deltas
        if event == "error":
            raise fastgpt_error(200, frame_json(frame.data))
        if event == "flowResponses":
            nodes = _json_any(frame.data)
            state.input_tokens, state.output_tokens = sum_node_usage(nodes)
            state.raw["flowResponses"] = nodes
        elif event == "interactive":
            # The workflow paused for a user choice: the turn ends here.
            state.raw["interactive"] = _json_any(frame.data)
            state.complete = True
        elif event == "updateVariables":
            state.raw["newVariables"] = _json_any(frame.data)
        return ()


def _json_any(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        raise BadResponse("FastGPT frame is not JSON") from None
