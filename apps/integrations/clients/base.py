"""The single call path shared by every provider client.

``HttpClient`` owns a pooled ``requests.Session`` and applies, for every call: connect/read
timeouts, up to ``RetryPolicy.max_attempts`` attempts with exponential backoff and jitter on
retryable failures only (honouring ``Retry-After`` on retryable 429s, capped), and one
``CallRecord`` per attempt handed to the pluggable ``recorder``.

The recorder interface is deliberately tiny: any callable taking one ``CallRecord``. The Django
layer passes one that writes an IntegrationCall row; tests pass ``list.append``. A recorder that
raises is logged and ignored, it never breaks the call. Records carry no secrets, URLs or
message bodies.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

import requests
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .errors import (
    BadResponse,
    IntegrationError,
    InvalidRequest,
    RateLimited,
    RequestTimeout,
    Unavailable,
)

logger = logging.getLogger("apps.integrations.clients")

T = TypeVar("T")

SECRET_HEADERS = frozenset({"authorization", "x-gewe-token", "api-key", "x-api-key", "cookie"})


@dataclass(frozen=True)
class CallRecord:
    """One attempt of one provider call, as handed to the recorder.

    ``ok`` is False when the attempt raised; ``error_class`` is then the IntegrationError
    subclass name (e.g. ``"RateLimited"``). ``http_status`` is None when no response arrived.
    ``attempt`` starts at 1. For streamed calls the record is emitted when the stream ends.
    """

    service: str
    operation: str
    http_status: int | None
    ok: bool
    error_class: str | None
    latency_ms: int
    request_id: str | None
    attempt: int


Recorder = Callable[[CallRecord], None]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, and how long to wait between them (seconds)."""

    max_attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    # A provider asking us to wait minutes would stall a worker; past this cap we wait the cap
    # and let the next attempt fail fast instead.
    max_retry_after: float = 30.0
    jitter: float = 0.25

    def delay(self, attempt: int, error: IntegrationError) -> float:
        """Seconds to wait after failed ``attempt`` (1-based) before the next one."""
        retry_after = getattr(error, "retry_after", None)
        if retry_after is not None and retry_after >= 0:
            base = min(float(retry_after), self.max_retry_after)
        else:
            base = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        # Jitter only ever lengthens the wait, so a Retry-After is never undercut.
        return base + random.uniform(0, base * self.jitter)


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Copy of ``headers`` safe for logs: secrets reduced to their last 4 characters."""
    safe = {}
    for name, value in headers.items():
        if name.lower() in SECRET_HEADERS:
            value = str(value)
            safe[name] = "***" + value[-4:] if len(value) > 12 else "***"
        else:
            safe[name] = value
    return safe


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait according to ``Retry-After``/``retry-after-ms``/``x-ratelimit-reset-*``."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens"):
        seconds = parse_duration(headers.get(name, ""))
        if seconds is not None:
            return seconds
    return None


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str) -> float | None:
    """Parse OpenAI-style reset durations such as ``12ms``, ``1.5s``, ``6m0s``."""
    text = (text or "").strip()
    if not text:
        return None
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * scale[u] for n, u in parts)


def decode_json(response: requests.Response) -> Any:
    """Body as JSON, or BadResponse. Python ints are exact, so 64-bit ids survive parsing;
    clients still turn them into ``str`` at the dataclass boundary for downstream JSON/JS."""
    try:
        return json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadResponse(
            f"non-JSON body ({response.headers.get('Content-Type', 'no content type')})",
            status=response.status_code,
        ) from exc


def request_id_of(response: requests.Response | None) -> str | None:
    if response is None:
        return None
    for name in ("x-request-id", "request-id", "x-acs-request-id", "x-dashscope-request-id"):
        value = response.headers.get(name)
        if value:
            return value
    return None


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request cannot have reached the server (refused / connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def transport_error(exc: requests.RequestException) -> Unavailable:
    """Map a requests exception (no usable response) to a typed, retryable error."""
    before_send = _never_sent(exc)
    if isinstance(exc, requests.Timeout):
        return RequestTimeout(f"timeout: {type(exc).__name__}", before_send=before_send)
    return Unavailable(f"connection failed: {type(exc).__name__}", before_send=before_send)


class StreamCall:
    """An open streamed response whose attempt is recorded once, when ``finish`` is called."""

    def __init__(
        self,
        client: HttpClient,
        operation: str,
        response: requests.Response,
        attempt: int,
        started: float,
    ) -> None:
        self.client = client
        self.operation = operation
        self.response = response
        self.attempt = attempt
        self.started = started
        self._finished = False

    def iter_bytes(self) -> Iterator[bytes]:
        """Raw body bytes as they arrive; transport failures become StreamBroken upstream."""
        raw = self.response.raw
        while True:
            # read1 returns whatever is buffered (>= 1 byte) instead of waiting for a full block,
            # so frames reach the caller as soon as the provider flushes them.
            chunk = raw.read1(65536, decode_content=True)
            if not chunk:
                return
            yield chunk

    def finish(self, error: BaseException | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        self.response.close()
        self.client._record(
            self.operation,
            self.response,
            error,
            self.started,
            self.attempt,
        )


class HttpClient:
    """Base of every provider client: one pooled session, one retrying call path.

    Subclasses set ``service`` and implement ``check_response`` (raise the provider's typed
    error for a failed response) and call ``self.call(...)`` / ``self.open_stream(...)``.
    ``sleep`` is injectable so tests do not really wait between retries.
    """

    service = "http"
    default_timeout: tuple[float, float] = (5.0, 30.0)

    def __init__(
        self,
        base_url: str,
        *,
        timeout: tuple[float, float] | None = None,
        retry: RetryPolicy | None = None,
        recorder: Recorder | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout or self.default_timeout
        self.retry = retry or RetryPolicy()
        self.recorder = recorder
        self.sleep = sleep
        if session is None:
            session = requests.Session()
            adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=32)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
        self.session = session

    # -- hooks ---------------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        """Headers carrying credentials; never logged unredacted."""
        return {}

    def check_response(self, response: requests.Response) -> None:
        """Raise the provider's typed error when ``response`` is a failure (status only)."""
        if response.status_code >= 500:
            raise Unavailable("server error", status=response.status_code)
        if response.status_code == 429:
            raise RateLimited(
                "rate limited", status=429, retry_after=parse_retry_after(response.headers)
            )
        if response.status_code >= 400:
            raise InvalidRequest("request rejected", status=response.status_code)

    # -- call path -----------------------------------------------------------------------

    def call(
        self,
        operation: str,
        path: str,
        *,
        json_body: Any = None,
        method: str = "POST",
        parse: Callable[[requests.Response], T],
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
        idempotent: bool = True,
        timeout: tuple[float, float] | None = None,
    ) -> T:
        """Send one logical request with retries; ``parse`` turns the response into a value or
        raises a typed error. Non-idempotent calls (sends) are retried only when the request
        provably never reached the provider or the provider throttled it."""

        def attempt_once(attempt: int) -> T:
            started = time.monotonic()
            response = None
            try:
                response = self._http(method, path, json_body, headers, auth, timeout, False)
                value = parse(response)
            except IntegrationError as exc:
                self._fill(exc, response)
                self._record(operation, response, exc, started, attempt)
                raise
            self._record(operation, response, None, started, attempt)
            return value

        return self._with_retries(operation, attempt_once, idempotent)

    def open_stream(
        self,
        operation: str,
        path: str,
        *,
        json_body: Any,
        headers: Mapping[str, str] | None = None,
        timeout: tuple[float, float] | None = None,
    ) -> StreamCall:
        """Open a streamed POST, retrying only until the response headers arrive successfully.
        Once bytes flow, failures are the caller's (no blind retry after partial output)."""

        def attempt_once(attempt: int) -> StreamCall:
            started = time.monotonic()
            response = None
            try:
                response = self._http("POST", path, json_body, headers, True, timeout, True)
                if response.status_code >= 400:
                    response.content  # noqa: B018 - read the error body before closing
                    self.check_response(response)
                    raise IntegrationError("request failed", status=response.status_code)
                self.check_stream_start(response)
            except IntegrationError as exc:
                self._fill(exc, response)
                if response is not None:
                    response.close()
                self._record(operation, response, exc, started, attempt)
                raise
            return StreamCall(self, operation, response, attempt, started)

        return self._with_retries(operation, attempt_once, True)

    def check_stream_start(self, response: requests.Response) -> None:
        """Hook: inspect a 2xx streamed response before reading frames (default: nothing)."""

    def _with_retries(
        self, operation: str, attempt_once: Callable[[int], T], idempotent: bool
    ) -> T:
        attempt = 1
        while True:
            try:
                return attempt_once(attempt)
            except IntegrationError as exc:
                retry = exc.retryable and attempt < self.retry.max_attempts
                if retry and not idempotent:
                    retry = isinstance(exc, RateLimited) or getattr(exc, "before_send", False)
                if not retry:
                    raise
                delay = self.retry.delay(attempt, exc)
                logger.info(
                    "%s %s attempt %d failed (%s), retrying in %.2fs",
                    self.service,
                    operation,
                    attempt,
                    type(exc).__name__,
                    delay,
                )
                self.sleep(delay)
                attempt += 1

    def _http(self, method, path, json_body, headers, auth, timeout, stream) -> requests.Response:
        all_headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if stream:
            all_headers["Accept"] = "text/event-stream"
        if auth:
            all_headers.update(self.auth_headers())
        all_headers.update(headers or {})
        url = self.base_url + path
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s %s headers=%s", self.service, method, path, redact_headers(all_headers)
            )
        data = None if json_body is None else json.dumps(json_body, ensure_ascii=False)
        try:
            return self.session.request(
                method,
                url,
                data=None if data is None else data.encode("utf-8"),
                headers=all_headers,
                timeout=timeout or self.timeout,
                stream=stream,
            )
        except requests.RequestException as exc:
            raise transport_error(exc) from None

    def secret_values(self) -> list[str]:
        """The credentials this client sends (auth header values, ``Bearer`` stripped)."""
        values = []
        for value in self.auth_headers().values():
            value = str(value)
            values.append(value)
            if value.lower().startswith("bearer "):
                values.append(value[7:])
        return values

    def _fill(self, exc: IntegrationError, response: requests.Response | None) -> None:
        # Providers echo the credential in their error text (GeWe: "X-GEWE-TOKEN=<token> ...
        # 不可用或已过期"); the message travels to status_detail, alerts, logs and API answers.
        from apps.core.secrets import redact

        redacted = redact(exc.message, self.secret_values())
        if redacted != exc.message:
            exc.message = redacted
            exc.args = (redacted, *exc.args[1:])
        if response is not None:
            if exc.status is None:
                exc.status = response.status_code
            if exc.request_id is None:
                exc.request_id = request_id_of(response)

    def _record(self, operation, response, error, started, attempt) -> None:
        latency_ms = int((time.monotonic() - started) * 1000)
        status = None if response is None else response.status_code
        if response is None and isinstance(error, IntegrationError):
            status = error.status
        request_id = request_id_of(response)
        if request_id is None and isinstance(error, IntegrationError):
            request_id = error.request_id
        record = CallRecord(
            service=self.service,
            operation=operation,
            http_status=status,
            ok=error is None,
            error_class=None if error is None else type(error).__name__,
            latency_ms=latency_ms,
            request_id=request_id,
            attempt=attempt,
        )
        log = logger.debug if error is None else logger.warning
        log(
            "%s %s attempt=%d status=%s error=%s latency=%dms",
            record.service,
            record.operation,
            attempt,
            status,
            record.error_class,
            latency_ms,
        )
        if self.recorder is not None:
            try:
                self.recorder(record)
            except Exception:  # A broken recorder must never break the provider call.
                logger.exception("integration call recorder failed")
