"""The AI apps of a conversation, in failover order, and the failover loop of one AI turn.

Order (first enabled reply app wins, duplicates dropped): the conversation's override, the
account's list (``AccountAIApp`` by position; the account's ``default_ai_app`` when it has no
list), then the organisation's list (its default reply app, then reply apps with a
``failover_position``).

Per app up to ``AI_APP_ATTEMPTS`` attempts with exponential backoff from
``AI_APP_RETRY_BASE_SECONDS`` (seed 004: 3 attempts, 5 s; a ``Retry-After`` is honoured, capped at
``AI_APP_RETRY_MAX_SECONDS``) on timeouts, 5xx, 429, broken streams, in-stream errors, failed
runs and empty answers; credentials, quota, rejected requests and moderation fail at once. When
the app still fails the turn moves to the next app. Every attempt is metered on its own:
reserve (a refusal stops the turn: the budget is the organisation's), then settle the real usage
on success, or settle the failed attempt at zero (a partial stream at its estimate), so the
ledger shows every attempt next to its ``IntegrationCall`` row. Apps whose circuit breaker is
open are skipped without a call; an app that failed all its attempts counts one failure.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings

from apps.conversations import ai_app_cache
from apps.conversations.models import AITurn, Conversation
from apps.integrations.breaker import OPEN, breaker_for
from apps.integrations.clients import errors as client_errors

logger = logging.getLogger(__name__)

# Errors that say nothing about the app's health: not counted by its breaker.
_NOT_APP_FAILURES = (client_errors.ConcurrencyTimeout, client_errors.ContentBlocked)


def ai_apps_for(conversation: Conversation) -> list:
    """The enabled reply apps of the conversation, in failover order (the lists and rows from
    the per-process ``ai_app_cache``)."""
    entry = ai_app_cache.app_lists(conversation.org_id)
    candidates: list[int] = []
    if conversation.ai_app_id:
        candidates.append(conversation.ai_app_id)
    account = conversation.account
    if account is not None:
        listed = entry.account_app_ids(account.pk)
        candidates += listed
        if not listed and account.default_ai_app_id:
            candidates.append(account.default_ai_app_id)
    candidates += entry.org_app_ids()
    ordered = list(dict.fromkeys(candidates))
    apps = entry.enabled_apps(ordered)
    return [apps[pk] for pk in ordered if pk in apps]


@dataclass
class FailoverOutcome:
    """What the failover loop produced: a result from ``ai_app`` or ``error``; one entry per
    app tried in ``attempts``; ``budget_error`` when the budget refused the call."""

    result: Any = None
    ai_app: Any = None
    cost: Decimal | None = None
    error: str = ""
    budget_error: str = ""
    attempts: list[dict] = field(default_factory=list)
    # No AI slot was free within the wait (the organisation's in-flight limit): the AI is
    # healthy, so the turn is re-queued instead of handed to a person.
    busy: bool = False

    @property
    def failovers(self) -> int:
        return sum(1 for a in self.attempts if a["outcome"] != "answered")


def _entry(ai_app, outcome: str, error: str = "", attempts: int = 0) -> dict:
    return {
        "ai_app_id": ai_app.pk,
        "name": ai_app.name,
        "outcome": outcome,
        "attempts": attempts,
        "error": error[:300],
    }


def app_client(ai_app):
    """The app's client; retries are the failover loop's (one call per attempt).

    When every AI slot of the organisation is taken the turn waits only
    ``CONVERSATION_AI_SLOT_WAIT_SECONDS`` and is then re-queued (``outcome.busy``): a worker
    thread never sits for long behind one organisation's slow provider while other
    organisations' turns wait for a thread (issue 19's noisy neighbour)."""
    from apps.integrations.clients.base import RetryPolicy
    from apps.integrations.services import ai_client_for, ai_limiter_for

    limiter = ai_limiter_for(ai_app.org_id, wait_seconds=settings.CONVERSATION_AI_SLOT_WAIT_SECONDS)
    return ai_client_for(ai_app, retry=RetryPolicy(max_attempts=1), limiter=limiter)


def _retryable(exc: BaseException) -> bool:
    """Worth another attempt at the same app: transport errors, 5xx, 429, a broken stream, a
    failed run, an empty answer. Not: credentials, quota, a rejected request, moderation."""
    if isinstance(exc, client_errors.ContentBlocked | client_errors.ConversationNotFound):
        return False
    if isinstance(exc, client_errors.UpstreamError):
        return True
    if isinstance(exc, client_errors.BadResponse) and str(exc).startswith(EMPTY_ANSWER):
        return True
    return isinstance(exc, client_errors.IntegrationError) and exc.retryable


def _backoff(attempt: int, exc: BaseException) -> float:
    base = settings.AI_APP_RETRY_BASE_SECONDS * (2 ** (attempt - 1))
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None and retry_after >= 0:
        base = max(base, float(retry_after))
    return min(base, settings.AI_APP_RETRY_MAX_SECONDS)


def _sleep(seconds: float) -> None:
    from apps.integrations.services import CLIENT_DEFAULTS

    if seconds > 0:
        CLIENT_DEFAULTS.get("sleep", time.sleep)(seconds)


EMPTY_ANSWER = "empty AI answer"


def call_with_failover(
    *,
    conversation: Conversation,
    turn: AITurn,
    apps: list,
    build_messages: Callable[[Any], list[dict]],
    call: Callable[[Any, list[dict]], Any],
    on_failover: Callable[[Any, str], None] | None = None,
    heartbeat: Callable[[], Any] | None = None,
) -> FailoverOutcome:
    """Try ``apps`` in order until one answers non-empty text (see the module docstring).

    ``build_messages(app)`` gives the app's context; ``call(app, messages)`` makes one call and
    returns a ``ChatResult`` (it raises the clients' typed errors).
    """
    from apps.billing import services as billing
    from apps.integrations import services as integrations

    outcome = FailoverOutcome()
    attempts = max(1, settings.AI_APP_ATTEMPTS)
    for index, ai_app in enumerate(apps):
        breaker = breaker_for(ai_app)
        if breaker.allow() == OPEN:
            outcome.attempts.append(_entry(ai_app, "skipped_open", "circuit breaker open"))
            outcome.error = outcome.error or "circuit breaker open"
            continue
        messages = build_messages(ai_app)
        error, exc = "", None
        for attempt in range(1, attempts + 1):
            if heartbeat is not None:
                heartbeat()
            try:
                reservation = billing.reserve(
                    org=conversation.org,
                    provider=ai_app.provider,
                    model=ai_app.model or ai_app.app_id or ai_app.provider,
                    kind="chat",
                    # What is really sent (system prompt included), and exactly the
                    # max_tokens the client sends.
                    estimated_input_tokens=billing.estimate_tokens(
                        integrations.with_system_prompt(ai_app, messages)
                    ),
                    estimated_output_tokens=integrations.ai_output_token_cap(ai_app),
                    request_id=_request_id(turn, ai_app, index, attempt),
                    wechat_account_id=conversation.account_id,
                    conversation_id=conversation.pk,
                )
            except billing.BudgetExceeded as budget:
                outcome.budget_error = str(budget)
                return outcome
            started = time.monotonic()
            try:
                result = call(ai_app, messages)
                if result is None or not (result.text or "").strip():
                    raise client_errors.BadResponse(EMPTY_ANSWER)
            except client_errors.ConcurrencyTimeout:
                billing.release(reservation=reservation)  # nothing was called, nothing costs
                outcome.busy = True
                return outcome
            except Exception as failure:  # noqa: BLE001 - any failure: retry, then next app
                exc = failure
                error = f"{type(failure).__name__}: {failure}"[:500]
                _settle_failed(billing, reservation, failure, messages)
                retry = attempt < attempts and _retryable(failure)
                logger.warning(
                    "ai: conversation %s app %s attempt %d failed (%s)%s",
                    conversation.pk,
                    ai_app.pk,
                    attempt,
                    error,
                    ", retrying" if retry else "",
                )
                if not retry:
                    break
                _sleep(_backoff(attempt, failure))
                continue
            breaker.record_success()
            try:
                ledger = billing.settle(
                    reservation=reservation,
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                    provider_cost=result.provider_cost,
                    provider_currency=result.currency or "",
                )
                outcome.cost = ledger.cost
            except Exception:  # noqa: BLE001 - the answer exists; billing can be reconciled
                logger.exception("ai: settling turn %s failed", turn.pk)
            if not result.latency_ms:
                from dataclasses import replace

                result = replace(result, latency_ms=int((time.monotonic() - started) * 1000))
            outcome.attempts.append(_entry(ai_app, "answered", attempts=attempt))
            outcome.result = result
            outcome.ai_app = ai_app
            outcome.error = ""
            return outcome
        if isinstance(exc, client_errors.IntegrationError) and not isinstance(
            exc, _NOT_APP_FAILURES
        ):
            breaker.record_failure(error=error)
        outcome.attempts.append(_entry(ai_app, "failed", error, attempts=attempt))
        outcome.error = error
        logger.warning(
            "ai: conversation %s app %s failed; %s",
            conversation.pk,
            ai_app.pk,
            "failing over" if index + 1 < len(apps) else "no app left",
        )
        if on_failover is not None and index + 1 < len(apps):
            on_failover(apps[index + 1], error)
    return outcome


def _request_id(turn: AITurn, ai_app, index: int, attempt: int) -> str:
    # One ledger row per attempt. The first keeps the historical id; a re-run turn (worker
    # killed) reuses its holds.
    if index == 0 and attempt == 1:
        return f"ai-turn-{turn.pk}"
    return f"ai-turn-{turn.pk}-app-{ai_app.pk}-{attempt}"


_REQUEST_ID = re.compile(r"^ai-turn-(\d+)(?:-app-(\d+)-\d+)?$")


def ai_app_id_for_request(*, org_id: int, request_id: str) -> int | None:
    """The AI app an attempt's ledger request id (``_request_id``) was reserved for, within
    the organisation; None for another kind of request. The first attempt's id names only the
    turn, whose ``ai_app`` is the first app tried until the turn finishes."""
    match = _REQUEST_ID.match(request_id or "")
    if match is None:
        return None
    if match.group(2):
        return int(match.group(2))
    turn = AITurn.objects.filter(org_id=org_id, pk=int(match.group(1)))
    return turn.values_list("ai_app_id", flat=True).first()


def _settle_failed(billing, reservation, exc: BaseException, messages: list[dict]) -> None:
    """Write the failed attempt to the ledger: zero, or the estimate of a partial stream
    (the provider may bill what it generated)."""
    partial = getattr(exc, "partial_text", "") or ""
    try:
        if partial:
            billing.settle(
                reservation=reservation,
                input_tokens=billing.estimate_tokens(messages),
                output_tokens=billing.estimate_tokens(partial),
                usage_source="estimated",
            )
        else:
            billing.settle(reservation=reservation, input_tokens=0, output_tokens=0)
    except Exception:  # noqa: BLE001
        logger.exception("ai: recording a failed attempt in the ledger failed")
        billing.release(reservation=reservation)


def stream_text(stream: Iterator, on_partial: Callable[[str], None]):
    """Drain a client stream: partial text to ``on_partial``; returns the final result."""
    from apps.integrations.clients.ai import ChatResult, TextReplaced

    text = ""
    for item in stream:
        if isinstance(item, ChatResult):
            return item
        text = str(item) if isinstance(item, TextReplaced) else text + item
        on_partial(text)
    raise client_errors.StreamBroken("stream ended without a result", partial_text=text)
