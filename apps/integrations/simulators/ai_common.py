"""Deterministic answers and token counts shared by the AI simulators."""

from __future__ import annotations

from typing import Any

from .core import ControlError, Reply, SimRequest, SimulatorServer


def count_tokens(text: str) -> int:
    """The simulators' token count: one token per character (deterministic, easy to assert)."""
    return len(text)


def message_text(message: dict) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content or "")


class AISimulator(SimulatorServer):
    """Base of the AI simulators: API keys and a canned-answer table.

    The answer to a question is the value of the first ``canned`` key contained in it, else
    ``"echo: <question>"``. Streams are cut into ``chunk_size``-character deltas.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_keys: tuple[str, ...] | list[str] | None = None,
        canned: dict[str, str] | None = None,
        chunk_size: int = 4,
        **kwargs: Any,
    ) -> None:
        self.api_keys = set(api_keys or self.default_keys)
        self._initial_canned = dict(canned or {})
        self.chunk_size = chunk_size
        super().__init__(host, port, **kwargs)

    default_keys: tuple[str, ...] = ()

    def reset_state(self) -> None:
        self.canned = dict(self._initial_canned)

    def control(self, action: str, request: SimRequest) -> Reply | None:
        """``POST /__sim__/canned`` {"substring": "reply", ...} adds canned answers."""
        if action == "canned":
            if not isinstance(request.json, dict) or not request.json:
                raise ControlError('send an object of {"substring in the question": "answer", ...}')
            with self._lock:
                self.canned.update({str(k): str(v) for k, v in request.json.items()})
            return Reply(200, self.canned)
        return None

    def answer(self, question: str) -> str:
        for needle, reply in self.canned.items():
            if needle in question:
                return reply
        return f"echo: {question}"

    def pieces(self, text: str) -> list[str]:
        size = max(1, self.chunk_size)
        return [text[i : i + size] for i in range(0, len(text), size)] or [""]

    def bearer_ok(self, header: str) -> bool:
        scheme, _, key = header.partition(" ")
        return scheme == "Bearer" and key in self.api_keys
