"""OpenAI-compatible chat completions simulator, with a DashScope (Bailian) flavour."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from typing import Any

from .ai_common import AISimulator, count_tokens, message_text
from .core import Fault, Reply, SimRequest, Stream, sse

_CREATED = 1735689600  # fixed timestamp: deterministic answers

# Default error code per injected HTTP status, per flavour.
_OPENAI_CODES = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    403: "unsupported_country",
    404: "model_not_found",
    500: "server_error",
    503: "server_error",
}
_DASHSCOPE_CODES = {
    400: "invalid_parameter_error",
    401: "invalid_api_key",
    403: "access_denied",
    404: "model_not_found",
    500: "internal_error",
    503: "ModelUnavailable",
}


class OpenAISimulator(AISimulator):
    """``POST /v1/chat/completions`` with OpenAI's shapes, usage and error bodies."""

    name = "openai"
    prefixes = ("/compatible-mode/v1", "/v1")
    flavor = "openai"
    default_keys = ("sk-sim-openai",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.route("POST", "/chat/completions", self._completions)

    def reset_state(self) -> None:
        super().reset_state()
        self._ids = itertools.count(1)

    # -- error bodies --------------------------------------------------------------------

    def error_body(self, code: str, message: str, err_type: str = "invalid_request_error") -> dict:
        body: dict[str, Any] = {
            "error": {"message": message, "type": err_type, "param": None, "code": code}
        }
        if self.flavor == "dashscope":
            body["id"] = f"chatcmpl-{uuid.uuid4()}"
            body["request_id"] = str(uuid.uuid4())
        return body

    def fault_reply(self, request: SimRequest, fault: Fault) -> Reply | None:
        dashscope = self.flavor == "dashscope"
        if fault.body is not None:
            return Reply(fault.status or 500, fault.body)
        if fault.kind == "auth":
            return self._unauthorized()
        if fault.kind == "rate_limit":
            code = fault.code or ("limit_requests" if dashscope else "rate_limit_exceeded")
            retry_after = fault.retry_after if fault.retry_after is not None else 1
            headers = {
                "Retry-After": str(retry_after),
                "x-ratelimit-limit-requests": "60",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-requests": f"{int(retry_after * 1000)}ms",
            }
            message = fault.message or "Rate limit reached for requests. Please try again later."
            return Reply(429, self.error_body(code, message, "requests"), headers)
        if fault.kind == "quota":
            if dashscope:
                message = "Access denied, please make sure your account is in good standing."
                return Reply(400, self.error_body(fault.code or "Arrearage", message, "Arrearage"))
            message = "You exceeded your current quota, please check your plan and billing details."
            return Reply(429, self.error_body("insufficient_quota", message, "insufficient_quota"))
        status = fault.status or 500
        codes = _DASHSCOPE_CODES if dashscope else _OPENAI_CODES
        code = fault.code or codes.get(status, "server_error")
        message = fault.message or f"simulated {code}"
        return Reply(status, self.error_body(code, message, code), {"x-request-id": "req_sim"})

    def _unauthorized(self) -> Reply:
        message = (
            "Incorrect API key provided. You can find your API key at "
            "https://platform.openai.com/account/api-keys."
        )
        if self.flavor == "dashscope":
            message = "Incorrect API key provided. "
        return Reply(401, self.error_body("invalid_api_key", message))

    # -- completions ---------------------------------------------------------------------

    def _completions(self, request: SimRequest) -> Reply | Stream:
        if not self.bearer_ok(request.header("Authorization")):
            return self._unauthorized()
        body = request.json if isinstance(request.json, dict) else None
        if not body or not body.get("messages") or not body.get("model"):
            return Reply(
                400, self.error_body("invalid_request_error", "'messages' and 'model' are required")
            )
        stream = bool(body.get("stream"))
        model = str(body["model"])
        if (
            self.flavor == "dashscope"
            and model.startswith("qwen3")
            and not stream
            and body.get("enable_thinking") is not False
        ):
            return Reply(
                400,
                self.error_body(
                    "invalid_parameter_error",
                    "parameter.enable_thinking must be set to false for non-streaming calls",
                ),
            )
        messages = body["messages"]
        question = next(
            (message_text(m) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        with self._lock:
            answer = self.answer(question)
            completion_id = f"chatcmpl-sim{next(self._ids):06d}"
        prompt_tokens = sum(count_tokens(message_text(m)) for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": count_tokens(answer),
            "total_tokens": prompt_tokens + count_tokens(answer),
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        }
        if not stream:
            return Reply(
                200,
                {
                    "id": completion_id,
                    "object": "chat.completion",
                    "created": _CREATED,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": answer},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": usage,
                },
                {"x-request-id": completion_id},
            )
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frames = self._frames(completion_id, model, answer, usage, include_usage, request.fault)
        return Stream(frames, headers={"x-request-id": completion_id})

    def _frames(
        self,
        completion_id: str,
        model: str,
        answer: str,
        usage: dict,
        include_usage: bool,
        fault: Fault | None,
    ) -> Iterator[bytes | float]:
        def chunk(delta: dict, finish: str | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": _CREATED,
                "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            if include_usage:
                data["usage"] = None
            return sse(data)

        failing = fault is not None and fault.kind in ("stream_error", "moderation")
        yield chunk({"role": "assistant", "content": ""})
        for index, piece in enumerate(self.pieces(answer)):
            if failing and index >= fault.after_chunks:
                yield self._stream_failure(fault)
                return
            yield chunk({"content": piece})
        if failing:
            yield self._stream_failure(fault)
            return
        yield chunk({}, "stop")
        if include_usage:
            yield sse(
                {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": _CREATED,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        yield sse("[DONE]")

    def _stream_failure(self, fault: Fault) -> bytes:
        if fault.kind == "moderation":
            body = self.error_body(
                "data_inspection_failed",
                "Output data may contain inappropriate content.",
                "data_inspection_failed",
            )
        else:
            body = self.error_body(
                fault.code or "server_error",
                fault.message or "The server had an error while processing your request.",
                "server_error",
            )
        return sse(body)


class DashScopeSimulator(OpenAISimulator):
    """DashScope compatible mode: ``/compatible-mode/v1/chat/completions``, DashScope codes."""

    name = "dashscope"
    flavor = "dashscope"
    default_keys = ("sk-sim-dashscope",)
