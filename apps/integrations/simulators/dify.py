"""Dify simulator: ``POST /v1/chat-messages`` (blocking and streaming) with user-scoped
conversations, inputs frozen after the first turn, priced usage and ``event: ping`` frames."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from .ai_common import AISimulator, count_tokens
from .core import Fault, Reply, SimRequest, Stream, sse

PROMPT_UNIT_PRICE = Decimal("0.001")
COMPLETION_UNIT_PRICE = Decimal("0.002")
PRICE_UNIT = Decimal("0.001")

_STATUS_CODES = {
    400: "invalid_param",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    413: "file_too_large",
    500: "internal_server_error",
}


def error_body(status: int, code: str, message: str) -> dict:
    return {"code": code, "message": message, "status": status}


def usage_for(prompt_tokens: int, completion_tokens: int) -> dict:
    """Dify's usage block; price = tokens x unit_price x price_unit, as decimal strings."""
    prompt_price = prompt_tokens * PROMPT_UNIT_PRICE * PRICE_UNIT
    completion_price = completion_tokens * COMPLETION_UNIT_PRICE * PRICE_UNIT
    return {
        "prompt_tokens": prompt_tokens,
        "prompt_unit_price": str(PROMPT_UNIT_PRICE),
        "prompt_price_unit": str(PRICE_UNIT),
        "prompt_price": f"{prompt_price:.7f}",
        "completion_tokens": completion_tokens,
        "completion_unit_price": str(COMPLETION_UNIT_PRICE),
        "completion_price_unit": str(PRICE_UNIT),
        "completion_price": f"{completion_price:.7f}",
        "total_tokens": prompt_tokens + completion_tokens,
        "total_price": f"{prompt_price + completion_price:.7f}",
        "currency": "USD",
        "latency": 0.42,
    }


class DifySimulator(AISimulator):
    """In-memory Dify chat app. ``ping_every``: an ``event: ping`` frame after every N answer
    pieces (plus one up front). ``replace_with``: send a ``message_replace`` with that text
    (output moderation). ``chatflow``: wrap the answer in workflow/node events."""

    name = "dify"
    prefixes = ("/v1",)
    default_keys = ("app-sim-dify",)

    def __init__(
        self, *args: Any, ping_every: int = 2, chatflow: bool = False, **kwargs: Any
    ) -> None:
        self._config = {"ping_every": ping_every, "chatflow": chatflow, "replace_with": None}
        super().__init__(*args, **kwargs)
        self.route("POST", "/chat-messages", self._chat)
        self.route("POST", "/chat-messages/", self._stop, prefix=True)

    def reset_state(self) -> None:
        super().reset_state()
        for name, value in self._config.items():
            setattr(self, name, value)
        self.conversations: dict[str, dict] = {}
        self.stopped_tasks: list[str] = []

    def state(self) -> dict:
        with self._lock:
            return {"conversations": {k: {**v} for k, v in self.conversations.items()}}

    def fault_reply(self, request: SimRequest, fault: Fault) -> Reply | None:
        if fault.body is not None:
            return Reply(fault.status or 500, fault.body)
        if fault.kind == "auth":
            return self._unauthorized()
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(fault.retry_after)
        if fault.kind == "rate_limit":
            return Reply(
                429,
                error_body(429, "too_many_requests", "Too many requests. Please try again later."),
                headers,
            )
        if fault.kind == "quota":
            return Reply(429, error_body(429, "rate_limit_error", "Rate Limit Error"))
        status = fault.status or 500
        code = fault.code or _STATUS_CODES.get(status, "internal_server_error")
        return Reply(status, error_body(status, code, fault.message or f"simulated {code}"))

    @staticmethod
    def _unauthorized() -> Reply:
        return Reply(
            401,
            error_body(401, "unauthorized", "Access token is invalid"),
            {"WWW-Authenticate": 'Bearer realm="api"'},
        )

    def _stop(self, request: SimRequest) -> Reply:
        if not self.bearer_ok(request.header("Authorization")):
            return self._unauthorized()
        task_id = request.path[len("/chat-messages/") :].removesuffix("/stop")
        with self._lock:
            self.stopped_tasks.append(task_id)
        return Reply(200, {"result": "success"})

    def _chat(self, request: SimRequest) -> Reply | Stream:
        if not self.bearer_ok(request.header("Authorization")):
            return self._unauthorized()
        body = request.json if isinstance(request.json, dict) else {}
        user = body.get("user")
        if not user:
            return Reply(400, error_body(400, "invalid_param", "Arg user must be provided."))
        query = body.get("query")
        if not query:
            return Reply(400, error_body(400, "invalid_param", "query is required"))
        conversation_id = body.get("conversation_id") or ""
        with self._lock:
            if conversation_id:
                try:
                    uuid.UUID(conversation_id)
                except ValueError:
                    return Reply(
                        400, error_body(400, "invalid_param", "conversation_id is not a valid uuid")
                    )
                conversation = self.conversations.get(conversation_id)
                if conversation is None or conversation["user"] != user:
                    return Reply(404, error_body(404, "not_found", "Conversation Not Exists."))
            else:
                conversation_id = str(uuid.uuid4())
                # Inputs are frozen when the conversation is created.
                conversation = {
                    "user": user,
                    "inputs": dict(body.get("inputs") or {}),
                    "history": [],
                }
                self.conversations[conversation_id] = conversation
            answer = self.answer(query)
            prompt = sum(count_tokens(t) for t in conversation["history"]) + count_tokens(query)
            conversation["history"] += [query, answer]
        usage = usage_for(prompt, count_tokens(answer))
        ids = {"task_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4())}
        ids["id"] = ids["message_id"]
        created = int(time.time())
        if body.get("response_mode") != "streaming":
            return Reply(
                200,
                {
                    "event": "message",
                    **ids,
                    "conversation_id": conversation_id,
                    "mode": "chat",
                    "answer": answer,
                    "metadata": {"retriever_resources": [], "usage": usage},
                    "created_at": created,
                },
            )
        frames = self._frames(ids, conversation_id, created, answer, usage, request.fault)
        return Stream(frames)

    def _frames(
        self,
        ids: dict,
        conversation_id: str,
        created: int,
        answer: str,
        usage: dict,
        fault: Fault | None,
    ) -> Iterator[bytes | float]:
        base = {**ids, "conversation_id": conversation_id, "created_at": created}
        run_id = str(uuid.uuid4())
        if self.chatflow:
            yield sse(
                {
                    "event": "workflow_started",
                    "task_id": ids["task_id"],
                    "workflow_run_id": run_id,
                    "data": {"id": run_id},
                }
            )
            yield sse(
                {
                    "event": "node_started",
                    "task_id": ids["task_id"],
                    "workflow_run_id": run_id,
                    "data": {"node_type": "llm"},
                }
            )
        yield sse(event="ping")
        failing = fault is not None and fault.kind == "stream_error"
        for index, piece in enumerate(self.pieces(answer)):
            if failing and index >= fault.after_chunks:
                yield sse(
                    {
                        "event": "error",
                        **ids,
                        "status": 500,
                        "code": fault.code or "internal_server_error",
                        "message": fault.message or "Internal Server Error",
                    }
                )
                return
            yield sse({"event": "message", **base, "answer": piece})
            if self.ping_every and (index + 1) % self.ping_every == 0:
                yield sse(event="ping")
        if self.replace_with is not None:
            yield sse({"event": "message_replace", **base, "answer": self.replace_with})
        yield sse(
            {
                "event": "message_end",
                **base,
                "metadata": {"usage": usage, "retriever_resources": []},
            }
        )
        if self.chatflow:
            yield sse(
                {
                    "event": "workflow_finished",
                    "task_id": ids["task_id"],
                    "workflow_run_id": run_id,
                    "data": {
                        "id": run_id,
                        "status": "succeeded",
                        "outputs": {"answer": answer},
                        "error": None,
                        "total_tokens": usage["total_tokens"],
                    },
                }
            )
