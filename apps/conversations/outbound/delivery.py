"""One delivery attempt: quiet hours, order, rate limit, claim, platform call, outcome."""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from apps.billing.services import record_usage_claimed
from apps.conversations.models import Message
from apps.conversations.outbound.queue import (
    MEDIA_KINDS,
    DeliveryResult,
    _kick_next,
    _older_unfinished,
    _push_status,
    enqueue,
)
from apps.core import events, ratelimit
from apps.core.stages import stage_observe_since
from apps.integrations.clients import errors as client_errors
from apps.integrations.services import CallLogRecorder, call_log_recorder
from apps.wechat_accounts.models import WeChatAccount
from apps.wechat_accounts.platform import client_for_account
from apps.wechat_accounts.send_policy import quiet_hours_end, send_limits
from apps.wechat_accounts.services import account_mark_offline_from_send, account_mark_seen

logger = logging.getLogger(__name__)


# -- delivery ------------------------------------------------------------------------------


def _platform_send(message: Message, recorder: CallLogRecorder) -> Any:
    account = message.account
    client = client_for_account(account, for_send=True, recorder=recorder)
    device, to = account.device_id, message.to_wxid
    payload = message.payload or {}
    if message.kind == Message.Kind.TEXT:
        return client.send_text(device, to, message.text, at=payload.get("at") or None)
    if message.kind in MEDIA_KINDS:
        # A stored file goes out as a signed URL made now (never stale in the queue).
        from apps.conversations.media import platform_media_url, video_thumb_url

        url = platform_media_url(message)
    if message.kind == Message.Kind.IMAGE:
        return client.send_image(device, to, url)
    if message.kind == Message.Kind.FILE:
        return client.send_file(device, to, url, payload.get("file_name", ""))
    if message.kind == Message.Kind.VIDEO:
        return client.send_video(
            device,
            to,
            url,
            thumb_url=payload.get("thumb_url") or video_thumb_url(),
            duration_s=int(payload.get("duration_s") or 0),
        )
    if message.kind == Message.Kind.LINK:
        return client.send_link(
            device,
            to,
            title=payload.get("title") or message.text,
            description=payload.get("description", ""),
            url=message.media_url,
            thumb_url=payload.get("thumb_url", ""),
        )
    raise client_errors.NotSupported(f"cannot send kind {message.kind}")


def _is_ambiguous(exc: client_errors.IntegrationError) -> bool:
    """The request may have reached the platform and been executed (no definite answer)."""
    if isinstance(exc, client_errors.Unavailable):
        return not exc.before_send and exc.status is None
    return False


def _is_definite_retryable(exc: client_errors.IntegrationError) -> bool:
    if isinstance(exc, client_errors.RateLimited):
        return True
    if isinstance(exc, client_errors.Unavailable):
        return exc.before_send or (exc.status is not None and exc.status >= 500)
    return False


def _backoff(attempts: int) -> float:
    base = settings.WECHAT_SEND_RETRY_BASE_SECONDS * (2 ** max(0, attempts - 1))
    delay = min(settings.WECHAT_SEND_RETRY_MAX_SECONDS, base)
    return delay + random.uniform(0, delay * 0.25)


def _finish(message: Message, *, status: str, fields: dict) -> Message | None:
    """Move ``sending -> status`` (conditional: a recovered/duplicate worker cannot overwrite).
    The claimed ``message`` is updated in memory: while it is ``sending`` only this worker
    writes it, so there is nothing to reload."""
    fields = {"status": status, "lease_expires_at": None, "updated_at": timezone.now(), **fields}
    updated = Message.objects.filter(
        org_id=message.org_id, pk=message.pk, status=Message.Status.SENDING
    ).update(**fields)
    if not updated:
        return None
    return _apply(message, fields)


def _apply(message: Message, fields: dict) -> Message:
    """Set what a conditional update wrote on the in-memory row, and push its status."""
    for name, value in fields.items():
        setattr(message, name, value)
    _push_status(message)
    return message


def _flush_calls(recorder: CallLogRecorder) -> None:
    """Write the buffered call log rows; like the client's recorder, never fail the send."""
    try:
        recorder.flush()
    except Exception:  # noqa: BLE001 - a log row must never change the send's outcome
        logger.exception("outbound: writing the platform call log failed")


def _sent_claim(message: Message, fields: dict) -> tuple[str, list]:
    """``sending -> sent`` as SQL and parameters, for the platform metering's statement.
    Columns come from the model's metadata, values are parameters."""
    meta = Message._meta
    quote = connection.ops.quote_name

    def column(name: str) -> str:
        return quote(meta.get_field(name).column)

    sets = ", ".join(f"{column(name)} = %s" for name in fields)
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {sets} "  # noqa: S608 - identifiers from metadata
        f"WHERE {column('org')} = %s AND {column('id')} = %s AND {column('status')} = %s"
    )
    params = [meta.get_field(name).get_db_prep_save(v, connection) for name, v in fields.items()]
    return sql, [*params, message.org_id, message.pk, Message.Status.SENDING]


def _finish_sent(message: Message, sent: Any, recorder: CallLogRecorder) -> Message | None:
    """``sending -> sent`` with the platform id, the send's ledger row and its call log row in
    one statement on PostgreSQL (``record_usage_claimed``). Billing must never undo a send that
    happened: if metering fails, the message is marked sent on its own."""
    fields = {
        "status": Message.Status.SENT,
        "lease_expires_at": None,
        "updated_at": timezone.now(),
        "platform_msg_id": sent.new_msg_id or sent.msg_id,
        "sent_at": timezone.now(),
        "error": "",
        "payload": {**(message.payload or {}), "platform": {"msg_id": sent.msg_id}},
    }
    account = message.account
    # One send attempt, one call row (``for_send`` clients do not retry). The statement has 45
    # parameters; psycopg caches the parsing of statements with at most 50.
    calls, recorder.pending = recorder.pending, []
    try:
        claimed = record_usage_claimed(
            org=account.org,
            claim=_sent_claim(message, fields),
            provider=account.connection.provider,
            model=f"send_{message.kind}",
            request_id=_send_request_id(message),
            units=1,
            user_id=message.sender_user_id,
            wechat_account_id=account.pk,
            conversation_id=message.conversation_id,
            also_insert=tuple(calls),
        )
    except Exception:  # noqa: BLE001 - the message is sent; the ledger can be rebuilt
        logger.exception("billing: recording send of message %s failed", message.pk)
        done = Message.objects.filter(
            org_id=message.org_id, pk=message.pk, status=Message.Status.SENT
        ).filter(platform_msg_id=fields["platform_msg_id"])
        if done.exists():  # the statement was made; a later step (thresholds) failed
            return _apply(message, fields)
        finished = _finish(message, status=Message.Status.SENT, fields=fields)
        recorder.pending = calls
        _flush_calls(recorder)
        return finished
    if not claimed:
        return None
    return _apply(message, fields)


def _load(org_id: int, message_id: int) -> Message | None:
    """The message with its account, organisation and connection, and whether an earlier
    message to the same contact is unfinished (per-contact order), in one query."""
    return (
        Message.objects.select_related("account", "account__org", "account__connection")
        .annotate(has_older_unfinished=_older_unfinished())
        .filter(org_id=org_id, pk=message_id, direction=Message.Direction.OUTBOUND)
        .first()
    )


def outbound_deliver(*, org_id: int, message_id: int) -> DeliveryResult:
    """One delivery attempt of a queued outbound message (see the module docstring).

    Must run outside a transaction: the platform call is network I/O and each state change is
    committed on its own so other workers see the claim at once.
    """
    message = _load(org_id, message_id)
    if message is None or message.account is None:
        logger.info("outbound: message %s of org %s is gone", message_id, org_id)
        return DeliveryResult("skipped")
    if message.status != Message.Status.QUEUED:
        return DeliveryResult("skipped")
    account = message.account
    now = timezone.now()
    if message.not_before and message.not_before > now:
        wait = (message.not_before - now).total_seconds()
        enqueue(org_id=org_id, message_id=message_id, countdown=wait)
        return DeliveryResult("deferred", wait)
    if account.status != WeChatAccount.Status.ONLINE:
        return DeliveryResult("not_online")
    if not message.is_urgent:
        end = quiet_hours_end(account, now)
        if end is not None:
            Message.objects.filter(
                org_id=org_id, pk=message_id, status=Message.Status.QUEUED
            ).update(not_before=end, updated_at=now)
            wait = (end - now).total_seconds()
            enqueue(org_id=org_id, message_id=message_id, countdown=wait)
            return DeliveryResult("deferred", wait)
    if message.has_older_unfinished:
        return DeliveryResult("waiting")  # the earlier message kicks this one when it finishes

    limits = send_limits(account)
    decision = ratelimit.acquire(limits)
    if not decision.allowed:
        wait = decision.retry_after + random.uniform(0, 0.05)
        enqueue(org_id=org_id, message_id=message_id, countdown=wait)
        events.send_rate_limited.send(
            sender=Message,
            org_id=org_id,
            account_id=account.pk,
            message_id=message_id,
            retry_after=wait,
        )
        return DeliveryResult("rate_limited", wait)

    now = timezone.now()
    claim = {
        "status": Message.Status.SENDING,
        "claimed_at": now,
        "lease_expires_at": now + timedelta(seconds=settings.WECHAT_SEND_LEASE_SECONDS),
        "call_started_at": None,
        "attempts": message.attempts + 1,
        "updated_at": now,
    }
    # Conditional on the attempts read above too: another worker's claim and release in
    # between makes this one lose, so the in-memory row stays exact (no reload).
    claimed = (
        Message.objects.filter(
            org_id=org_id,
            pk=message_id,
            status=Message.Status.QUEUED,
            attempts=message.attempts,
        )
        .filter(~_older_unfinished())
        .update(**claim)
    )
    if not claimed:
        ratelimit.release(limits, decision.token)
        return DeliveryResult("skipped")
    _apply(message, claim)

    # From here on the platform call may happen: a worker that dies before finishing is never
    # re-sent blindly (recovery reads ``call_started_at``). Kept as its own statement, just
    # before the call, so a worker killed between the claim and here is simply re-queued.
    call_started = timezone.now()
    Message.objects.filter(org_id=org_id, pk=message_id, status=Message.Status.SENDING).update(
        call_started_at=call_started
    )
    message.call_started_at = call_started
    stage_observe_since("send", message.created_at)
    recorder = call_log_recorder(
        org_id=org_id,
        connection_id=account.connection_id,
        wechat_account_id=account.pk,
        buffered=True,
    )
    try:
        sent = _platform_send(message, recorder)
        stage_observe_since("platform", call_started)
    except client_errors.AccountOffline as exc:
        _flush_calls(recorder)
        # The platform refused: nothing was sent. Wait for the re-login.
        _finish(
            message,
            status=Message.Status.QUEUED,
            fields={"error": str(exc)[:500], "call_started_at": None},
        )
        account_mark_offline_from_send(org_id=org_id, account_id=account.pk, reason=str(exc))
        return DeliveryResult("not_online")
    except client_errors.IntegrationError as exc:
        _flush_calls(recorder)
        return _handle_error(message, exc, limits, decision.token)
    except BaseException:
        _flush_calls(recorder)
        raise

    finished = _finish_sent(message, sent, recorder)
    if finished is None:
        logger.warning("outbound: message %s changed state during the send", message_id)
        return DeliveryResult("skipped")
    account_mark_seen(account=account)
    _kick_next(finished)
    return DeliveryResult("sent")


def _handle_error(
    message: Message, exc: client_errors.IntegrationError, limits: list, token: str
) -> DeliveryResult:
    reason = f"{type(exc).__name__}: {exc}"[:500]
    attempts = message.attempts
    if _is_ambiguous(exc):
        if settings.WECHAT_SEND_AMBIGUOUS_POLICY == "at_least_once" and (
            attempts < settings.WECHAT_SEND_MAX_ATTEMPTS
        ):
            return _retry_later(message, reason, attempts)
        failed = _finish(
            message,
            status=Message.Status.FAILED,
            fields={"error": f"delivery_unknown: {reason}"[:500]},
        )
        if failed:
            _kick_next(failed)
        return DeliveryResult("failed")
    if _is_definite_retryable(exc):
        # The platform said no: nothing was sent; give the admission back.
        ratelimit.release(limits, token)
        if attempts < settings.WECHAT_SEND_MAX_ATTEMPTS:
            wait = getattr(exc, "retry_after", None)
            return _retry_later(message, reason, attempts, wait)
    failed = _finish(message, status=Message.Status.FAILED, fields={"error": reason})
    if failed:
        _kick_next(failed)
    return DeliveryResult("failed")


def _retry_later(
    message: Message, reason: str, attempts: int, wait: float | None = None
) -> DeliveryResult:
    countdown = max(wait or 0.0, _backoff(attempts))
    retried = _finish(
        message,
        status=Message.Status.QUEUED,
        fields={"error": reason, "call_started_at": None},
    )
    if retried is None:
        return DeliveryResult("skipped")
    enqueue(org_id=message.org_id, message_id=message.pk, countdown=countdown)
    return DeliveryResult("retry", countdown)


def _send_request_id(message: Message) -> str:
    return f"wechat-send-{message.pk}"
