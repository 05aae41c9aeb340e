"""The one outbound send pipeline: every message to WeChat goes through ``send`` and
``outbound_deliver``.

``send(...)`` writes an outbound ``conversations.Message`` in state ``queued`` (in the contact's
conversation) and enqueues ``outbound_deliver_task`` after commit, with the account's human-like
delay as the task's countdown (a countdown, never a sleep). The task then:

1. skips rows that are no longer ``queued`` (idempotent; a duplicate task is a no-op);
2. defers non-urgent sends during the account's quiet hours (``not_before`` + countdown), and
   leaves rows of accounts that are not online queued (``account_online`` kicks them);
3. keeps per-contact order: only the oldest unfinished (queued or sending) message per
   (account, to_wxid) may be claimed; a finished message kicks the next one;
4. takes one admission from the Redis limiter (per account per minute and per day, per
   organisation, global; ``apps.core.ratelimit``); a refusal reschedules the task with the
   limiter's wait as countdown;
5. claims the row with a conditional update ``queued -> sending`` (+ lease, attempts + 1); a lost
   race gives the admission back;
6. marks ``call_started_at``, calls the platform (the client does not retry sends itself),
   stores the platform message id with ``sending -> sent``, records billing, pushes
   ``message_status_update`` and kicks the contact's next message.

Errors: a definite refusal that is retryable (HTTP 5xx answer, 429, connection refused) puts
the row back to ``queued`` with exponential backoff, at most ``WECHAT_SEND_MAX_ATTEMPTS``
attempts, then ``failed`` with the reason. ``AccountOffline`` marks the account offline and
leaves the message queued for after the re-login. Anything else fails the message at once.

Exactly-once vs the ambiguous case: when the platform may have sent the message but we never
stored its answer (read timeout after the request left; a worker killed during the call, seen
by the recovery task as an expired lease with ``call_started_at`` set and no platform id), we
cannot know whether the customer got it. ``WECHAT_SEND_AMBIGUOUS_POLICY`` decides:
``at_most_once`` (default) marks it ``failed`` with code ``delivery_unknown`` so the agent
checks the chat and resends by hand (a duplicate sales message to a customer is worse, and
looks like a bot); ``at_least_once`` re-queues it. A worker killed *before* the call (lease
expired, ``call_started_at`` empty) is always re-queued: nothing can have been sent.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations.models import Conversation, Message
from apps.core import ratelimit, realtime
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.core.redis import redis_key
from apps.integrations.clients import errors as client_errors
from apps.orgs.models import Organization
from apps.wechat_accounts.models import Contact, WeChatAccount

logger = logging.getLogger(__name__)

KINDS = (Message.Kind.TEXT, Message.Kind.IMAGE, Message.Kind.FILE, Message.Kind.LINK)
UNFINISHED = (Message.Status.QUEUED, Message.Status.SENDING)
DAY_WINDOW_MS = 86_400_000


# -- limits --------------------------------------------------------------------------------


def send_limits(account: WeChatAccount) -> list[ratelimit.Limit]:
    """The limits one send of ``account`` must fit in (all checked atomically together)."""
    window_ms = int(settings.WECHAT_SEND_WINDOW_SECONDS * 1000)
    org_settings = getattr(account.org, "settings", None) or {}
    org_limit = int(
        org_settings.get("wechat_send_limit_per_minute", settings.WECHAT_SEND_ORG_LIMIT_PER_MINUTE)
    )
    return [
        ratelimit.Limit(
            redis_key("rl", "wechat", "acct", account.pk, "min"),
            account.send_limit_per_minute,
            window_ms,
            "account_per_minute",
        ),
        ratelimit.Limit(
            redis_key("rl", "wechat", "acct", account.pk, "day"),
            account.send_limit_per_day,
            DAY_WINDOW_MS,
            "account_per_day",
        ),
        ratelimit.Limit(
            redis_key("rl", "wechat", "org", account.org_id, "min"),
            org_limit,
            window_ms,
            "org_per_minute",
        ),
        ratelimit.Limit(
            redis_key("rl", "wechat", "global", "min"),
            settings.WECHAT_SEND_GLOBAL_LIMIT_PER_MINUTE,
            window_ms,
            "global_per_minute",
        ),
    ]


def human_delay(account: WeChatAccount) -> float:
    """Seconds to wait before a send, drawn from the account's range (scaled by settings)."""
    scale = settings.WECHAT_SEND_DELAY_SCALE
    if scale <= 0:
        return 0.0
    low, high = sorted((account.delay_min_seconds or 0.0, account.delay_max_seconds or 0.0))
    return random.uniform(low, high) * scale


def quiet_hours_end(account: WeChatAccount, now: datetime | None = None) -> datetime | None:
    """When ``now`` falls in the account's quiet hours (organisation time zone), their end."""
    start, end = account.quiet_hours_start, account.quiet_hours_end
    if start is None or end is None or start == end:
        return None
    now = now or timezone.now()
    local = now.astimezone(account.org.tzinfo)
    t = local.timetz().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # wraps midnight, e.g. 22:00-08:00
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    naive = datetime.combine(end_day, end)
    return naive.replace(tzinfo=account.org.tzinfo)


# -- send ----------------------------------------------------------------------------------


def _validate(kind: str, text: str, url: str, file_name: str, title: str) -> dict[str, list]:
    errors: dict[str, list] = {}
    if kind not in KINDS:
        errors["kind"] = [_("Use one of: text, image, file, link.")]
    elif kind == Message.Kind.TEXT and not text.strip():
        errors["text"] = [_("A text message needs text.")]
    elif kind in (Message.Kind.IMAGE, Message.Kind.FILE, Message.Kind.LINK) and not url:
        errors["url"] = [_("This kind of message needs a URL.")]
    if kind == Message.Kind.FILE and url and not file_name:
        file_name = url.rstrip("/").rsplit("/", 1)[-1]
        if not file_name:
            errors["file_name"] = [_("A file needs a file name.")]
    if kind == Message.Kind.LINK and url and not (title or text):
        errors["title"] = [_("A link needs a title.")]
    return errors


def conversation_for(
    *, org: Organization, account: WeChatAccount, contact: Contact
) -> Conversation:
    """The conversation of (account, contact), created on first use (race-safe)."""
    conversation = Conversation.objects.filter(org=org, account=account, contact=contact).first()
    if conversation is not None:
        return conversation
    try:
        with transaction.atomic():
            conversation = Conversation(org=org, account=account, contact=contact)
            conversation.full_clean(validate_constraints=False)
            conversation.save()
            return conversation
    except IntegrityError:
        return Conversation.objects.get(org=org, account=account, contact=contact)


@transaction.atomic
def send(
    *,
    org: Organization,
    account: WeChatAccount,
    to_wxid: str,
    kind: str = Message.Kind.TEXT,
    text: str = "",
    url: str = "",
    file_name: str = "",
    title: str = "",
    description: str = "",
    thumb_url: str = "",
    at_wxids: list[str] | None = None,
    sender_kind: str = Message.SenderKind.SYSTEM,
    sender_user=None,
    urgent: bool = False,
    not_before: datetime | None = None,
    client_msg_id: str = "",
    conversation: Conversation | None = None,
) -> Message:
    """Queue one outbound message and return it at once (state ``queued``).

    ``kind`` text (``text``, optional ``at_wxids`` for group mentions), image (``url``), file
    (``url`` + ``file_name``) or link (``url`` + ``title``/``description``/``thumb_url``).
    ``client_msg_id`` is an idempotency key: sending again with the same key returns the first
    message. ``urgent`` sends ignore quiet hours; ``not_before`` schedules. Raises
    ``ApplicationError`` (400, with field errors) on invalid input, ``NotFoundError`` when the
    account is not this organisation's.
    """
    if account.org_id != org.pk:
        raise NotFoundError(_("WeChat account not found."))
    to_wxid = (to_wxid or "").strip()
    errors = _validate(kind, text or "", url or "", file_name or "", title or "")
    if not to_wxid:
        errors["to"] = [_("Give the recipient's wxid.")]
    if errors:
        raise ApplicationError(_("The message is not valid."), fields=errors)
    if kind == Message.Kind.FILE and not file_name:
        file_name = url.rstrip("/").rsplit("/", 1)[-1]
    if account.status in (WeChatAccount.Status.BANNED,):
        raise ConflictError(_("This WeChat account is banned and cannot send."))
    if client_msg_id:
        existing = Message.objects.filter(org=org, client_msg_id=client_msg_id).first()
        if existing is not None:
            return existing

    contact = Contact.objects.filter(org=org, account=account, wxid=to_wxid).first()
    if contact is None:
        from apps.wechat_accounts.services import contact_upsert

        contact = contact_upsert(org=org, account=account, wxid=to_wxid, source="outbound")
    if conversation is None:
        conversation = conversation_for(org=org, account=account, contact=contact)
    elif conversation.org_id != org.pk:
        raise NotFoundError(_("Conversation not found."))

    payload: dict[str, Any] = {}
    if kind == Message.Kind.FILE:
        payload["file_name"] = file_name
    if kind == Message.Kind.LINK:
        payload.update(
            title=title or text, description=description or "", thumb_url=thumb_url or ""
        )
    if at_wxids:
        payload["at"] = list(at_wxids)
    now = timezone.now()
    message = Message(
        org=org,
        conversation=conversation,
        direction=Message.Direction.OUTBOUND,
        sender_kind=sender_kind,
        sender_user=sender_user,
        kind=kind,
        text=text or "",
        status=Message.Status.QUEUED,
        account=account,
        to_wxid=to_wxid,
        media_url=url or "",
        payload=payload,
        is_urgent=urgent,
        not_before=not_before,
        client_msg_id=client_msg_id or "",
    )
    message.full_clean(validate_constraints=False)
    try:
        with transaction.atomic():
            message.save()
    except IntegrityError:
        if client_msg_id:  # a concurrent send with the same key won
            return Message.objects.get(org=org, client_msg_id=client_msg_id)
        raise
    Conversation.objects.filter(pk=conversation.pk).update(last_message_at=now, updated_at=now)
    _push_status(message)
    countdown, human = human_delay(account), True
    if not_before and not_before > now:
        countdown, human = max(countdown, (not_before - now).total_seconds()), False
    message_id, org_id = message.pk, org.pk
    transaction.on_commit(
        lambda: enqueue(org_id=org_id, message_id=message_id, countdown=countdown, human=human)
    )
    return message


# -- delivery ------------------------------------------------------------------------------


def enqueue(*, org_id: int, message_id: int, countdown: float = 0.0, human: bool = False) -> bool:
    """Enqueue a delivery attempt after ``countdown`` seconds. Under eager Celery (unit tests)
    a wait (rate limit, backoff, quiet hours) is not run inline, which would recurse; the
    recovery task or the test runs it later. ``human`` marks the human-like delay, which eager
    mode simply skips."""
    from apps.wechat_accounts.tasks import outbound_deliver as outbound_deliver_task

    if settings.CELERY_TASK_ALWAYS_EAGER and countdown > 0 and not human:
        return False
    outbound_deliver_task.apply_async(
        kwargs={"org_id": org_id, "message_id": message_id},
        countdown=max(0.0, countdown),
    )
    return True


def _older_unfinished(message_qs_ref: Any = None) -> Exists:
    return Exists(
        Message.objects.filter(
            account_id=OuterRef("account_id"),
            to_wxid=OuterRef("to_wxid"),
            direction=Message.Direction.OUTBOUND,
            status__in=UNFINISHED,
            id__lt=OuterRef("id"),
        )
    )


@dataclass(frozen=True)
class DeliveryResult:
    outcome: str  # sent, failed, retry, rate_limited, deferred, waiting, not_online, skipped
    retry_after: float = 0.0


def _push_status(message: Message) -> None:
    data = {
        "message_id": message.pk,
        "conversation_id": message.conversation_id,
        "account_id": message.account_id,
        "status": message.status,
        "platform_msg_id": message.platform_msg_id,
        "error": message.error,
        "attempts": message.attempts,
        "sent_at": message.sent_at,
    }
    realtime.push_on_commit(
        "message_status_update",
        data,
        groups=[
            realtime.group_for_conversation(message.org_id, message.conversation_id),
            realtime.group_for_conversations(message.org_id),
        ],
    )


def _reload(message_id: int) -> Message:
    return Message.objects.select_related("account", "account__org", "account__connection").get(
        pk=message_id
    )


def _kick_next(message: Message) -> None:
    """Enqueue the oldest queued message to the same contact (per-contact order)."""
    nxt = (
        Message.objects.filter(
            account_id=message.account_id,
            to_wxid=message.to_wxid,
            direction=Message.Direction.OUTBOUND,
            status=Message.Status.QUEUED,
        )
        .order_by("id")
        .values_list("id", flat=True)
        .first()
    )
    if nxt is not None:
        account = message.account
        enqueue(org_id=message.org_id, message_id=nxt, countdown=human_delay(account), human=True)


def _platform_send(message: Message) -> Any:
    from apps.wechat_accounts.platform import client_for_account

    account = message.account
    client = client_for_account(account, for_send=True)
    device, to = account.device_id, message.to_wxid
    payload = message.payload or {}
    if message.kind == Message.Kind.TEXT:
        return client.send_text(device, to, message.text, at=payload.get("at") or None)
    if message.kind == Message.Kind.IMAGE:
        return client.send_image(device, to, message.media_url)
    if message.kind == Message.Kind.FILE:
        return client.send_file(device, to, message.media_url, payload.get("file_name", ""))
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


def _finish(message_id: int, *, status: str, fields: dict) -> Message | None:
    """Move ``sending -> status`` (conditional: a recovered/duplicate worker cannot overwrite)."""
    now = timezone.now()
    updated = Message.objects.filter(pk=message_id, status=Message.Status.SENDING).update(
        status=status, lease_expires_at=None, updated_at=now, **fields
    )
    if not updated:
        return None
    message = _reload(message_id)
    _push_status(message)
    return message


def outbound_deliver(*, org_id: int, message_id: int) -> DeliveryResult:
    """One delivery attempt of a queued outbound message (see the module docstring).

    Must run outside a transaction: the platform call is network I/O and each state change is
    committed on its own so other workers see the claim at once.
    """
    message = (
        Message.objects.select_related("account", "account__org", "account__connection")
        .filter(org_id=org_id, pk=message_id, direction=Message.Direction.OUTBOUND)
        .first()
    )
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
            Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).update(
                not_before=end, updated_at=now
            )
            wait = (end - now).total_seconds()
            enqueue(org_id=org_id, message_id=message_id, countdown=wait)
            return DeliveryResult("deferred", wait)
    older = Message.objects.filter(
        account_id=message.account_id,
        to_wxid=message.to_wxid,
        direction=Message.Direction.OUTBOUND,
        status__in=UNFINISHED,
        id__lt=message.pk,
    )
    if older.exists():
        return DeliveryResult("waiting")  # the earlier message kicks this one when it finishes

    limits = send_limits(account)
    decision = ratelimit.acquire(limits)
    if not decision.allowed:
        wait = decision.retry_after + random.uniform(0, 0.05)
        enqueue(org_id=org_id, message_id=message_id, countdown=wait)
        return DeliveryResult("rate_limited", wait)

    lease = timedelta(seconds=settings.WECHAT_SEND_LEASE_SECONDS)
    claimed = (
        Message.objects.filter(pk=message_id, status=Message.Status.QUEUED)
        .filter(~_older_unfinished())
        .update(
            status=Message.Status.SENDING,
            claimed_at=now,
            lease_expires_at=now + lease,
            call_started_at=None,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    )
    if not claimed:
        ratelimit.release(limits, decision.token)
        return DeliveryResult("skipped")
    message = _reload(message_id)
    _push_status(message)

    Message.objects.filter(pk=message_id, status=Message.Status.SENDING).update(
        call_started_at=timezone.now()
    )
    try:
        sent = _platform_send(message)
    except client_errors.AccountOffline as exc:
        # The platform refused: nothing was sent. Wait for the re-login.
        _finish(
            message_id,
            status=Message.Status.QUEUED,
            fields={"error": str(exc)[:500], "call_started_at": None},
        )
        from apps.wechat_accounts.services import account_mark_offline_from_send

        account_mark_offline_from_send(org_id=org_id, account_id=account.pk, reason=str(exc))
        return DeliveryResult("not_online")
    except client_errors.IntegrationError as exc:
        return _handle_error(message, exc, limits, decision.token)

    finished = _finish(
        message_id,
        status=Message.Status.SENT,
        fields={
            "platform_msg_id": sent.new_msg_id or sent.msg_id,
            "sent_at": timezone.now(),
            "error": "",
            "payload": {**(message.payload or {}), "platform": {"msg_id": sent.msg_id}},
        },
    )
    if finished is None:
        logger.warning("outbound: message %s changed state during the send", message_id)
        return DeliveryResult("skipped")
    WeChatAccount.objects.filter(pk=account.pk).update(last_seen_at=timezone.now())
    billing_record_send(finished)
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
            message.pk,
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
    failed = _finish(message.pk, status=Message.Status.FAILED, fields={"error": reason})
    if failed:
        _kick_next(failed)
    return DeliveryResult("failed")


def _retry_later(
    message: Message, reason: str, attempts: int, wait: float | None = None
) -> DeliveryResult:
    countdown = max(wait or 0.0, _backoff(attempts))
    retried = _finish(
        message.pk,
        status=Message.Status.QUEUED,
        fields={"error": reason, "call_started_at": None},
    )
    if retried is None:
        return DeliveryResult("skipped")
    enqueue(org_id=message.org_id, message_id=message.pk, countdown=countdown)
    return DeliveryResult("retry", countdown)


def billing_record_send(message: Message) -> None:
    """Record the platform operation's cost (one ledger row per message, idempotent by the
    request id). Billing failures are logged, never undo a send that happened."""
    try:
        from apps.billing.services import record_usage
    except ImportError:  # billing not installed in this deployment
        return
    account = message.account
    try:
        record_usage(
            org=account.org,
            provider=account.connection.provider,
            model=f"send_{message.kind}",
            request_id=f"wechat-send-{message.pk}",
            units=1,
            user=message.sender_user,
            wechat_account_id=account.pk,
            conversation_id=message.conversation_id,
        )
    except Exception:  # noqa: BLE001 - the message is sent; the ledger can be rebuilt
        logger.exception("billing: recording send of message %s failed", message.pk)


# -- recovery ------------------------------------------------------------------------------


@dataclass
class RecoveryResult:
    requeued: int = 0
    failed_unknown: int = 0
    expired: int = 0
    reenqueued: int = 0


def outbound_recover(*, org: Organization, now: datetime | None = None) -> RecoveryResult:
    """Recover an organisation's sends stuck by crashed workers or lost broker tasks.

    - ``sending`` with an expired lease and no platform id: if the platform call never started,
      back to ``queued`` (safe); if it started, the ambiguous case: ``failed`` with
      ``delivery_unknown`` (at_most_once) or back to ``queued`` (at_least_once).
    - ``queued`` older than ``WECHAT_SEND_QUEUE_TTL_SECONDS``: ``failed`` (expired).
    - ``queued`` and due but untouched for ``WECHAT_SEND_STALE_QUEUED_SECONDS`` (task lost, or a
      deferred send that is due now): enqueued again (the claim makes duplicates harmless).
    """
    now = now or timezone.now()
    result = RecoveryResult()
    base = Message.objects.filter(org=org, direction=Message.Direction.OUTBOUND)
    expired_lease = base.filter(
        status=Message.Status.SENDING, lease_expires_at__lt=now, platform_msg_id=""
    )
    requeue_ids = list(
        expired_lease.filter(call_started_at__isnull=True).values_list("id", flat=True)
    )
    ambiguous = expired_lease.filter(call_started_at__isnull=False)
    if settings.WECHAT_SEND_AMBIGUOUS_POLICY == "at_least_once":
        requeue_ids += list(ambiguous.values_list("id", flat=True))
    else:
        for message_id in ambiguous.values_list("id", flat=True):
            failed = Message.objects.filter(
                pk=message_id, status=Message.Status.SENDING, lease_expires_at__lt=now
            ).update(
                status=Message.Status.FAILED,
                lease_expires_at=None,
                error=_(
                    "delivery_unknown: the worker stopped during the platform call; "
                    "check the chat before resending."
                ),
                updated_at=now,
            )
            if failed:
                result.failed_unknown += 1
                message = _reload(message_id)
                _push_status(message)
                _kick_next(message)
    for message_id in requeue_ids:
        updated = Message.objects.filter(
            pk=message_id, status=Message.Status.SENDING, lease_expires_at__lt=now
        ).update(
            status=Message.Status.QUEUED,
            lease_expires_at=None,
            call_started_at=None,
            error=_("Recovered after the worker stopped."),
            updated_at=now,
        )
        if updated:
            result.requeued += 1
            message = _reload(message_id)
            _push_status(message)
            enqueue(org_id=org.pk, message_id=message_id)

    ttl = timedelta(seconds=settings.WECHAT_SEND_QUEUE_TTL_SECONDS)
    for message_id in (
        base.filter(status=Message.Status.QUEUED, created_at__lt=now - ttl)
        .filter(Q(not_before__isnull=True) | Q(not_before__lt=now - ttl))
        .values_list("id", flat=True)
    ):
        if Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).update(
            status=Message.Status.FAILED,
            error=_("expired: not sent within the queue lifetime."),
            updated_at=now,
        ):
            result.expired += 1
            message = _reload(message_id)
            _push_status(message)
            _kick_next(message)

    stale = now - timedelta(seconds=settings.WECHAT_SEND_STALE_QUEUED_SECONDS)
    due = (
        base.filter(status=Message.Status.QUEUED, updated_at__lt=stale)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .filter(account__status=WeChatAccount.Status.ONLINE)
        .filter(~_older_unfinished())
        .values_list("id", flat=True)[:1000]
    )
    for message_id in list(due):
        Message.objects.filter(pk=message_id, status=Message.Status.QUEUED).update(updated_at=now)
        enqueue(org_id=org.pk, message_id=message_id)
        result.reenqueued += 1
    return result


def outbound_kick_account(*, org_id: int, account_id: int) -> int:
    """Enqueue the head (oldest queued message) of every contact's queue of an account; used
    when the account comes (back) online."""
    heads = (
        Message.objects.filter(
            org_id=org_id,
            account_id=account_id,
            direction=Message.Direction.OUTBOUND,
            status=Message.Status.QUEUED,
        )
        .filter(~_older_unfinished())
        .values_list("id", flat=True)
    )
    count = 0
    for message_id in list(heads):
        enqueue(org_id=org_id, message_id=message_id)
        count += 1
    return count


def sends_today(account: WeChatAccount) -> int:
    """Messages the account sent since midnight in the organisation's time zone."""
    local_now = timezone.now().astimezone(account.org.tzinfo)
    midnight = local_now.replace(hour=0, minute=0, second=0, microsecond=0)
    return Message.objects.filter(
        org_id=account.org_id, account=account, status=Message.Status.SENT, sent_at__gte=midnight
    ).count()
