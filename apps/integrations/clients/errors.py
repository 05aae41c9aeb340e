"""Typed errors raised by every provider client.

Callers branch on the class (and on ``retryable``), never on provider-specific codes: each
client maps its provider's real error bodies onto this hierarchy.
"""

from __future__ import annotations


class IntegrationError(Exception):
    """Base class for every failure of a call to an external provider.

    ``status`` is the HTTP status (None when no response arrived), ``provider_code`` the
    provider's own error code (GeWe ``ret``, E云 ``code``, FastGPT body ``code``, Dify/OpenAI
    ``code``), ``request_id`` the provider's request id when it sent one.
    """

    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        provider_code: str | None = None,
        request_id: str | None = None,
        retryable: bool | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.provider_code = None if provider_code is None else str(provider_code)
        self.request_id = request_id
        if retryable is not None:
            self.retryable = retryable

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.append(f"status={self.status}")
        if self.provider_code is not None:
            parts.append(f"code={self.provider_code}")
        return " ".join(parts)


class AuthError(IntegrationError):
    """Credentials are missing, invalid, expired or lack permission."""


class RateLimited(IntegrationError):
    """The provider throttled us; safe to retry after ``retry_after`` seconds (if known)."""

    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class QuotaExhausted(IntegrationError):
    """Balance, credits or a spend limit ran out; retrying will not help until someone pays."""


class Unavailable(IntegrationError):
    """Connection error, timeout or 5xx: the provider may work again shortly.

    ``before_send`` is True when the request provably never reached the provider (connection
    refused, connect timeout), so even a non-idempotent call (sending a message) may be retried.
    """

    retryable = True

    def __init__(self, message: str, *, before_send: bool = False, **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.before_send = before_send


class RequestTimeout(Unavailable):
    """No (complete) answer within the configured connect/read timeout."""


class StreamBroken(Unavailable):
    """A streamed answer stopped before its terminal event; ``partial_text`` is what arrived.

    Not retried automatically: the provider may already have stored the turn.
    """

    def __init__(self, message: str, *, partial_text: str = "", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text


class BadResponse(IntegrationError):
    """The provider answered with something we cannot interpret (not JSON, wrong shape)."""


class InvalidRequest(IntegrationError):
    """The provider rejected the request itself (validation, wrong app mode, unknown id)."""


class ConversationNotFound(InvalidRequest):
    """The provider no longer knows the conversation (Dify 404): start a new one."""


class UpstreamError(IntegrationError):
    """The provider accepted the request but its run failed (FastGPT ``error``, Dify ``failed``)."""


class ContentBlocked(IntegrationError):
    """Input or output moderation refused the content; ``partial_text`` must not be sent."""

    def __init__(self, message: str, *, partial_text: str = "", **kwargs) -> None:
        super().__init__(message, **kwargs)
        self.partial_text = partial_text


class AccountOffline(IntegrationError):
    """The WeChat platform says the account is offline or not logged in: re-login needed."""


class NotSupported(IntegrationError):
    """The operation does not exist on this platform or plan (e.g. Moments on open-source GeWe)."""


class ConcurrencyTimeout(IntegrationError):
    """No in-flight slot became free within the wait timeout (our own limiter, not the provider)."""

    retryable = True
