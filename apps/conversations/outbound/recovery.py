"""Recovery of stuck sends, the account kick when it comes online, today's count."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations.models import Message
from apps.conversations.outbound.queue import (
    _kick_next,
    _older_unfinished,
    _push_status,
    _reload,
    enqueue,
)
from apps.orgs.models import Organization
from apps.wechat_accounts.models import WeChatAccount

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
            failed = base.filter(
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
                message = _reload(org.pk, message_id)
                _push_status(message)
                _kick_next(message)
    for message_id in requeue_ids:
        updated = base.filter(
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
            message = _reload(org.pk, message_id)
            _push_status(message)
            enqueue(org_id=org.pk, message_id=message_id)

    ttl = timedelta(seconds=settings.WECHAT_SEND_QUEUE_TTL_SECONDS)
    for message_id in (
        base.filter(status=Message.Status.QUEUED, created_at__lt=now - ttl)
        .filter(Q(not_before__isnull=True) | Q(not_before__lt=now - ttl))
        .values_list("id", flat=True)
    ):
        if base.filter(pk=message_id, status=Message.Status.QUEUED).update(
            status=Message.Status.FAILED,
            error=_("expired: not sent within the queue lifetime."),
            updated_at=now,
        ):
            result.expired += 1
            message = _reload(org.pk, message_id)
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
        base.filter(pk=message_id, status=Message.Status.QUEUED).update(updated_at=now)
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
