"""Provider-neutral AI chat interface, plus intent/sentiment analysis and a batch helper.

Every AI client offers ``chat(...) -> ChatResult`` and ``chat_stream(...)``, an iterator of
text deltas (``str``) whose last item is the final ``ChatResult`` (with usage). Use
``ChatResult.text`` as the authoritative reply: a provider may replace the whole answer
mid-stream (Dify ``message_replace``), signalled by a ``TextReplaced`` delta.
"""

from __future__ import annotations

import json
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import requests
import urllib3

from .base import HttpClient
from .errors import BadResponse, ContentBlocked, IntegrationError, StreamBroken
from .sse import SSEFrame, iter_sse

T = TypeVar("T")
R = TypeVar("R")

Messages = Sequence[dict[str, Any]] | str


@dataclass(frozen=True)
class ChatResult:
    """One AI answer. Token counts are None when the provider reported none (bill by
    estimate then). ``provider_cost`` is only set by providers that price calls (Dify)."""

    text: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    provider_cost: Decimal | None = None
    currency: str | None = None
    provider_conversation_id: str | None = None
    latency_ms: int = 0
    finish_reason: str | None = None
    raw: Any = field(default=None, repr=False)


class TextReplaced(str):
    """A stream delta that replaces all text received so far (output moderation)."""


@dataclass
class StreamState:
    """Mutable accumulator shared by the provider-specific frame handlers."""

    parts: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost: Decimal | None = None
    currency: str | None = None
    conversation_id: str | None = None
    finish_reason: str | None = None
    complete: bool = False  # terminal event seen: EOF after this is not a broken stream
    stop: bool = False  # stop reading now
    raw: dict = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(self.parts)


def frame_json(text: str) -> dict:
    """A stream frame's JSON object, or BadResponse."""
    try:
        value = json.loads(text)
    except ValueError:
        raise BadResponse("stream frame is not JSON") from None
    if not isinstance(value, dict):
        raise BadResponse("stream frame is not a JSON object")
    return value


def normalize_messages(messages: Messages) -> list[dict[str, Any]]:
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    return [dict(m) for m in messages]


def last_user_text(messages: Messages) -> str:
    for message in reversed(normalize_messages(messages)):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content or "")
    raise ValueError("no user message to send")


class AIChatClient(HttpClient, ABC):
    """Base of the AI clients: credentials, optional in-flight limiter, stream driver.

    ``limiter`` is anything with a ``slot()`` context manager (``AIConcurrencyLimiter``); when
    given, every call and every stream holds one slot for its whole duration.
    """

    default_timeout = (5.0, 60.0)

    def __init__(self, base_url: str, api_key: str, *, limiter: Any = None, **kwargs: Any) -> None:
        super().__init__(base_url, **kwargs)
        self.api_key = api_key
        self.limiter = limiter

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def _slot(self) -> AbstractContextManager:
        return self.limiter.slot() if self.limiter is not None else nullcontext()

    def chat(
        self,
        messages: Messages,
        *,
        conversation_id: str | None = None,
        user: str | None = None,
        variables: dict[str, Any] | None = None,
        json_output: bool = False,
    ) -> ChatResult:
        """Blocking chat turn. ``messages`` is an OpenAI-style list or a single user text;
        session-keeping providers (FastGPT, Dify) send only the last user message when a
        ``conversation_id`` is given. ``variables`` fill app variables (ignored by OpenAI)."""
        with self._slot():
            return self._chat(
                normalize_messages(messages), conversation_id, user, variables or {}, json_output
            )

    def chat_stream(
        self,
        messages: Messages,
        *,
        conversation_id: str | None = None,
        user: str | None = None,
        variables: dict[str, Any] | None = None,
        json_output: bool = False,
    ) -> Iterator[str | ChatResult]:
        """Streamed chat turn: yields text deltas, then the final ``ChatResult``. Raises
        ``StreamBroken`` (with ``partial_text``) when the stream stops early, or the typed
        error of an in-stream error frame."""
        with self._slot():
            yield from self._chat_stream(
                normalize_messages(messages), conversation_id, user, variables or {}, json_output
            )

    @abstractmethod
    def _chat(
        self,
        messages: list[dict],
        conversation_id: str | None,
        user: str | None,
        variables: dict,
        json_output: bool,
    ) -> ChatResult: ...

    @abstractmethod
    def _chat_stream(
        self,
        messages: list[dict],
        conversation_id: str | None,
        user: str | None,
        variables: dict,
        json_output: bool,
    ) -> Iterator[str | ChatResult]: ...

    @abstractmethod
    def on_frame(self, frame: SSEFrame, state: StreamState) -> Iterable[str]:
        """Consume one SSE frame: update ``state``, return text deltas, raise typed errors."""

    def run_stream(self, operation: str, path: str, body: dict) -> Iterator[str | ChatResult]:
        started = time.monotonic()
        call = self.open_stream(operation, path, json_body=body)
        state = StreamState()
        error: BaseException | None = None
        try:
            try:
                for frame in iter_sse(call.iter_bytes()):
                    yield from self.on_frame(frame, state)
                    if state.stop:
                        break
            except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                raise StreamBroken(
                    f"stream interrupted: {type(exc).__name__}",
                    partial_text=state.text,
                    status=call.response.status_code,
                ) from None
            if not state.complete:
                raise StreamBroken(
                    "stream ended before its terminal event",
                    partial_text=state.text,
                    status=call.response.status_code,
                )
            result = ChatResult(
                text=state.text,
                input_tokens=state.input_tokens,
                output_tokens=state.output_tokens,
                provider_cost=state.cost,
                currency=state.currency,
                provider_conversation_id=state.conversation_id,
                latency_ms=int((time.monotonic() - started) * 1000),
                finish_reason=state.finish_reason,
                raw=state.raw,
            )
        except GeneratorExit:
            raise  # the consumer stopped reading; not a provider failure
        except BaseException as exc:
            if isinstance(exc, ContentBlocked) and not exc.partial_text:
                exc.partial_text = state.text
            error = exc
            raise
        finally:
            call.finish(error)
        yield result


# -- analysis helpers --------------------------------------------------------------------

INTENTS = (
    "purchase",
    "price_inquiry",
    "product_question",
    "after_sales",
    "complaint",
    "greeting",
    "chitchat",
    "other",
)
SENTIMENTS = ("positive", "neutral", "negative")


@dataclass(frozen=True)
class IntentResult:
    intent: str
    confidence: float
    fallback: bool = False
    chat: ChatResult | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SentimentResult:
    sentiment: str
    score: float  # -1.0 (very negative) .. 1.0 (very positive)
    fallback: bool = False
    chat: ChatResult | None = field(default=None, repr=False)


_INTENT_PROMPT = (
    "You classify a WeChat customer's message for a sales team. Answer with JSON only, no "
    'prose: {"intent": one of [%s], "confidence": number between 0 and 1}.'
)
_SENTIMENT_PROMPT = (
    "You rate the sentiment of a WeChat customer's message. Answer with JSON only, no prose: "
    '{"sentiment": one of ["positive", "neutral", "negative"], "score": number between -1 '
    "and 1}."
)

_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def extract_json_object(text: str) -> dict | None:
    """The first JSON object in ``text`` (models wrap JSON in prose or code fences)."""
    match = _JSON_OBJECT.search(text or "")
    if not match:
        return None
    try:
        value = json.loads(match.group(0))
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _unit(value: Any, low: float, high: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if low <= number <= high else None


def analyze_intent(client: AIChatClient, text: str, *, user: str | None = None) -> IntentResult:
    """Classify ``text`` into one of ``INTENTS``; garbage output gives intent ``other`` with
    ``fallback=True``. Provider errors propagate (the caller decides whether to retry)."""
    messages = [
        {"role": "system", "content": _INTENT_PROMPT % ", ".join(f'"{i}"' for i in INTENTS)},
        {"role": "user", "content": text},
    ]
    result = client.chat(messages, user=user, json_output=True)
    data = extract_json_object(result.text) or {}
    intent = str(data.get("intent", "")).strip().lower()
    confidence = _unit(data.get("confidence", 1.0), 0.0, 1.0)
    if intent not in INTENTS or confidence is None:
        return IntentResult("other", 0.0, fallback=True, chat=result)
    return IntentResult(intent, confidence, chat=result)


def analyze_sentiment(
    client: AIChatClient, text: str, *, user: str | None = None
) -> SentimentResult:
    """Rate ``text``; garbage output gives ``neutral`` / 0.0 with ``fallback=True``."""
    messages = [
        {"role": "system", "content": _SENTIMENT_PROMPT},
        {"role": "user", "content": text},
    ]
    result = client.chat(messages, user=user, json_output=True)
    data = extract_json_object(result.text) or {}
    sentiment = str(data.get("sentiment", "")).strip().lower()
    default_score = {"positive": 0.5, "neutral": 0.0, "negative": -0.5}.get(sentiment, 0.0)
    score = _unit(data.get("score", default_score), -1.0, 1.0)
    if sentiment not in SENTIMENTS or score is None:
        return SentimentResult("neutral", 0.0, fallback=True, chat=result)
    return SentimentResult(sentiment, score, chat=result)


def batch(
    func: Callable[[T], R], items: Iterable[T], *, concurrency: int = 10
) -> list[R | IntegrationError]:
    """Apply ``func`` to every item with at most ``concurrency`` calls in flight (this process).
    Results keep the input order; an item whose call raised an IntegrationError yields that
    error instead of aborting the batch. Other exceptions (bugs) propagate."""

    def run(item: T) -> R | IntegrationError:
        try:
            return func(item)
        except IntegrationError as exc:
            return exc

    items = list(items)
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(concurrency, len(items)))) as pool:
        return list(pool.map(run, items))
