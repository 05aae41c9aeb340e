"""FastGPT simulator: ``POST /api/v1/chat/completions`` with chatId sessions, node-level
usage only under ``detail=true`` and HTTP 500 + body ``code`` for every error."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from .ai_common import AISimulator, count_tokens, message_text
from .core import Fault, Reply, SimRequest, Stream, sse

PLACEHOLDER_USAGE = {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 1}
ACCOUNT_KEY = "fastgpt-sim-account"


def error_body(code: int, status_text: str, message: str) -> dict:
    return {"code": code, "statusText": status_text, "message": message, "data": None}


class FastGPTSimulator(AISimulator):
    """In-memory FastGPT app. Node usage (deterministic, see ``response_data``):

    - question classifier: input = len(question) + 20, output = 3
    - tool-call container: own input 10, output 2, with a nested AI chat node whose input is
      the characters of history + question and output the characters of the answer.
    """

    name = "fastgpt"
    prefixes = ("/api",)
    default_keys = ("fastgpt-sim-key",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.route("POST", "/v1/chat/completions", self._completions)
        self.route("POST", "/v2/chat/completions", self._completions)

    def reset_state(self) -> None:
        super().reset_state()
        self.chats: dict[str, list[dict]] = {}
        self._ids = itertools.count(1)

    def state(self) -> dict:
        with self._lock:
            return {"chats": {k: list(v) for k, v in self.chats.items()}}

    def fault_reply(self, request: SimRequest, fault: Fault) -> Reply | None:
        if fault.body is not None:
            return Reply(fault.status or 500, fault.body)
        if fault.kind == "auth":
            return Reply(500, error_body(514, "unAuthApiKey", "Api Key 不合法"))
        if fault.kind == "rate_limit":
            seconds = int(fault.retry_after if fault.retry_after is not None else 1)
            message = (
                f"Rate limit exceeded. Maximum 60 requests per 60 seconds for this team. "
                f"Please try again in {seconds} seconds."
            )
            return Reply(500, error_body(429, "error", message))
        if fault.kind == "quota":
            code = int(fault.code or 500002)
            text = {510: "insufficientQuota", 506002: "openapiExceedLimit"}.get(
                code, "aiPointsNotEnough"
            )
            return Reply(500, error_body(code, text, fault.message or "AI积分已用完"))
        # FastGPT's jsonRes forces HTTP 500 whatever the cause.
        code = int(fault.code or 500)
        return Reply(
            fault.status or 500,
            error_body(code, "error", fault.message or "simulated FastGPT failure"),
        )

    def _completions(self, request: SimRequest) -> Reply | Stream:
        header = request.header("Authorization")
        body = request.json if isinstance(request.json, dict) else {}
        if header == f"Bearer {ACCOUNT_KEY}" and not body.get("appId"):
            return Reply(
                500,
                error_body(
                    500,
                    "error",
                    "Key is error. You need to use the app key rather than the account key.",
                ),
            )
        if not self.bearer_ok(header) and header != f"Bearer {ACCOUNT_KEY}":
            return Reply(500, error_body(514, "unAuthApiKey", "Api Key 不合法"))
        messages = body.get("messages") or []
        if not messages:
            return Reply(500, error_body(500, "error", "messages is empty"))
        chat_id = body.get("chatId")
        with self._lock:
            if chat_id == "":
                chat_id = f"simchat{next(self._ids):06d}"
            if chat_id:
                # Stored history is used; only the last message is the question.
                history = list(self.chats.get(chat_id, []))
                turn = [messages[-1]]
            else:
                history, turn = [], list(messages)
            question = message_text(turn[-1])
            answer = self.answer(question)
            if chat_id:
                self.chats.setdefault(chat_id, []).extend(
                    [turn[-1], {"role": "assistant", "content": answer}]
                )
        prompt = sum(count_tokens(message_text(m)) for m in history + turn)
        nodes = self.response_data(question, prompt, count_tokens(answer))
        detail = bool(body.get("detail"))
        if not body.get("stream"):
            reply: dict[str, Any] = {
                "id": chat_id or "",
                "model": "",
                "error": None,
                "usage": PLACEHOLDER_USAGE,
                "choices": [
                    {
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "stop",
                        "index": 0,
                    }
                ],
            }
            if detail:
                reply["responseData"] = nodes
                reply["newVariables"] = body.get("variables") or {}
            return Reply(200, reply)
        return Stream(self._frames(answer, nodes, detail, request.fault))

    @staticmethod
    def response_data(question: str, prompt_tokens: int, answer_tokens: int) -> list[dict]:
        q = count_tokens(question)
        chat_node = {
            "moduleType": "chatNode",
            "moduleName": "AI 对话",
            "model": "gpt-4o-mini",
            "inputTokens": prompt_tokens,
            "outputTokens": answer_tokens,
            "tokens": prompt_tokens + answer_tokens,
            "totalPoints": 0.04,
            "runningTime": 0.8,
        }
        return [
            {
                "moduleType": "questionClassify",
                "moduleName": "问题分类",
                "model": "gpt-4o-mini",
                "inputTokens": q + 20,
                "outputTokens": 3,
                "tokens": q + 23,
                "totalPoints": 0.01,
                "cqResult": "售前咨询",
                "runningTime": 0.3,
            },
            # Container: points include the children, tokens are only its own (PR #7775).
            {
                "moduleType": "tools",
                "moduleName": "工具调用",
                "model": "gpt-4o-mini",
                "inputTokens": 10,
                "outputTokens": 2,
                "tokens": 12,
                "totalPoints": 0.05,
                "toolDetail": [chat_node],
                "runningTime": 1.1,
            },
        ]

    def _frames(
        self, answer: str, nodes: list[dict], detail: bool, fault: Fault | None
    ) -> Iterator[bytes | float]:
        def answer_chunk(content: str | None, finish: str | None = None) -> bytes:
            data = {
                "id": "",
                "object": "",
                "created": 0,
                "model": "",
                "choices": [
                    {
                        "delta": {"role": "assistant", "content": content},
                        "index": 0,
                        "finish_reason": finish,
                    }
                ],
            }
            return sse(data, "answer" if detail else None)

        if detail:
            yield sse({"status": "running", "name": "问题分类"}, "flowNodeStatus")
        yield answer_chunk("")  # the 10 s keep-alive is an empty answer chunk
        failing = fault is not None and fault.kind == "stream_error"
        for index, piece in enumerate(self.pieces(answer)):
            if failing and index >= fault.after_chunks:
                break
            yield answer_chunk(piece)
        if failing:
            # Stream errors come as `event: error` even when detail=false.
            yield sse({"message": fault.message or "LLM request failed"}, "error")
            return
        yield answer_chunk(None, "stop")
        yield sse("[DONE]", "answer" if detail else None)
        if detail:
            # v1 sends node responses after [DONE].
            yield sse(nodes, "flowResponses")
