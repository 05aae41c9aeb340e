"""Writes of the reports app: the one raw table reports own, and what to recompute when.

The figures themselves are computed by ``apps.reports.compute`` (``cycles_refresh``,
``day_refresh``), whatever asked for them. The receivers (``receivers.py``) mark what changed
in Redis (conversations, UTC hours); the ``reports_refresh`` task recomputes exactly those
(``dirty_refresh``), and ``reports_rebuild`` recomputes a whole range (``range_rebuild``).
Both run the same functions, so an incremental refresh and a rebuild give the same numbers.

``event_record_handoff`` / ``event_record_resolved`` write ``ConversationEvent`` rows in the
transaction of the change (the history other apps do not keep).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable

from django.db import IntegrityError, transaction

from apps.core.locks import RedisLock
from apps.core.redis import get_redis, redis_key
from apps.orgs.models import Organization
from apps.reports.compute import (  # noqa: F401 - re-exported: the public computations
    HOUR,
    PHONE_REASON,
    chunks,
    conversation_days,
    cycles_refresh,
    day_bounds,
    day_refresh,
    days_between,
    local_day,
    sop_day_refresh,
)
from apps.reports.models import ConversationEvent

logger = logging.getLogger(__name__)


# -- the raw table reports own -------------------------------------------------------------


def _event_create(*, org_id: int, conversation_id: int, kind: str, reason: str, at) -> bool:
    event = ConversationEvent(
        org_id=org_id, conversation_id=conversation_id, kind=kind, reason=reason[:32], at=at
    )
    try:
        with transaction.atomic():
            event.save()
    except IntegrityError:
        return False  # the same event seen twice (a re-saved row): one fact, one row
    return True


def event_record_handoff(*, org_id: int, conversation_id: int, reason: str, at) -> bool:
    """Record a handoff to a person (called in the transaction that set ``handed_off_at``).

    A phone reply re-arms the AI pause with every message the salesperson types; while the
    previous pause is still running it is the same handoff, not a new one.
    """
    from django.conf import settings

    if reason == PHONE_REASON:
        pause = dt.timedelta(seconds=settings.CONVERSATION_PHONE_PAUSE_SECONDS)
        previous = (
            ConversationEvent.objects.filter(
                conversation_id=conversation_id, kind__in=ConversationEvent.Kind.values
            )
            .order_by("-at", "-id")
            .values_list("kind", "reason", "at")
            .first()
        )
        if (
            previous is not None
            and previous[0] == ConversationEvent.Kind.HANDOFF
            and previous[1] == PHONE_REASON
            and at - previous[2] <= pause
        ):
            return False
    return _event_create(
        org_id=org_id,
        conversation_id=conversation_id,
        kind=ConversationEvent.Kind.HANDOFF,
        reason=reason or "other",
        at=at,
    )


def deferral_record(*, org_id: int, account_id: int, at: dt.datetime) -> None:
    """Count one rate-limit deferral of an account in the UTC hour of ``at``."""
    from django.db.models import F

    from apps.reports.models import SendDeferralHour

    hour = at.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)
    rows = SendDeferralHour.objects.filter(org_id=org_id, account_id=account_id, hour=hour)
    if rows.update(count=F("count") + 1):
        return
    try:
        with transaction.atomic():
            SendDeferralHour.objects.create(
                org_id=org_id, account_id=account_id, hour=hour, count=1
            )
    except IntegrityError:  # another worker created the hour's row first
        rows.update(count=F("count") + 1)


def event_record_resolved(*, org_id: int, conversation_id: int, at) -> bool:
    return _event_create(
        org_id=org_id,
        conversation_id=conversation_id,
        kind=ConversationEvent.Kind.RESOLVED,
        reason="",
        at=at,
    )


# -- incremental refresh and rebuild --------------------------------------------------------


def _dirty_keys(org_id: int) -> tuple[str, str, str]:
    return (
        redis_key("reports", "dirty", org_id, "conversations"),
        redis_key("reports", "dirty", org_id, "hours"),
        redis_key("reports", "dirty", org_id, "redim"),
    )


DIRTY_ORGS = ("reports", "dirty", "orgs")

_TAKE = """
local out = {}
for i, key in ipairs(KEYS) do
  out[i] = redis.call('SMEMBERS', key)
  redis.call('DEL', key)
end
if ARGV[1] then
  redis.call('SREM', ARGV[1], ARGV[2])
end
return out
"""


def dirty_mark(
    *,
    org_id: int,
    conversation_ids: Iterable[int] = (),
    at: Iterable[dt.datetime] = (),
    redim_conversation_ids: Iterable[int] = (),
) -> None:
    """Note what changed (called after commit by the receivers); ``reports_refresh`` picks it
    up. Hours are UTC epoch hours: the org's time zone is applied when refreshing."""
    conversations, hours, redim = _dirty_keys(org_id)
    pipe = get_redis().pipeline(transaction=False)
    conversation_ids, redim_ids = list(conversation_ids), list(redim_conversation_ids)
    stamps = [int(a.timestamp() // HOUR) for a in at if a is not None]
    if conversation_ids:
        pipe.sadd(conversations, *conversation_ids)
    if stamps:
        pipe.sadd(hours, *stamps)
    if redim_ids:
        pipe.sadd(redim, *redim_ids)
    pipe.sadd(redis_key(*DIRTY_ORGS), org_id)
    pipe.execute()


def cache_invalidate(*, org_id: int) -> None:
    """Cached reports of the organisation are stale from now on (``selectors.report``)."""
    try:
        get_redis().incr(redis_key("reports", "version", org_id))
    except Exception:  # noqa: BLE001 - the cache expires by itself
        logger.warning("reports: could not invalidate the cache of org %s", org_id)


def dirty_orgs_list() -> list[int]:
    """Organisations with marks. An organisation leaves the set only when its refresh takes
    its marks, so a refresh task lost or expired in the queue is simply enqueued again."""
    return sorted(int(x) for x in get_redis().smembers(redis_key(*DIRTY_ORGS)))


def dirty_refresh(*, org_id: int) -> dict:
    """Recompute what the receivers marked for one organisation (idempotent: running it twice
    recomputes the same rows from the same raw rows). Marks are taken atomically and put back
    if the refresh fails, so a crash loses nothing."""
    org = Organization.objects.filter(pk=org_id).first()
    if org is None:
        return {"conversations": 0, "days": 0}
    lock = RedisLock(redis_key("reports", "refresh", org_id), ttl=600)
    if not lock.acquire():
        get_redis().sadd(redis_key(*DIRTY_ORGS), org_id)  # the running refresh may miss ours
        return {"conversations": 0, "days": 0, "busy": True}
    keys = _dirty_keys(org_id)
    try:
        taken = get_redis().eval(_TAKE, len(keys), *keys, redis_key(*DIRTY_ORGS), org_id)
        conversation_ids = {int(x) for x in taken[0]}
        hours = {int(x) for x in taken[1]}
        redim = {int(x) for x in taken[2]}
        try:
            days = {local_day(org, dt.datetime.fromtimestamp(h * HOUR, tz=dt.UTC)) for h in hours}
            # The hour mark is UTC: a local day may start inside it (a half-hour zone).
            days |= {
                local_day(org, dt.datetime.fromtimestamp(h * HOUR + HOUR - 1, tz=dt.UTC))
                for h in hours
            }
            days |= cycles_refresh(org=org, conversation_ids=conversation_ids | redim)
            if redim:
                days |= conversation_days(org=org, conversation_ids=redim)
            for day in sorted(days):
                day_refresh(org=org, day=day)
            for day in sorted({d - dt.timedelta(days=1) for d in days} - days):
                sop_day_refresh(org=org, day=day)  # replies within 24 h of yesterday's sends
        except Exception:
            dirty_mark(
                org_id=org_id,
                conversation_ids=conversation_ids,
                redim_conversation_ids=redim,
                at=[dt.datetime.fromtimestamp(h * HOUR, tz=dt.UTC) for h in hours],
            )
            raise
        cache_invalidate(org_id=org_id)
        return {"conversations": len(conversation_ids | redim), "days": len(days)}
    finally:
        lock.release()


def range_rebuild(*, org: Organization, start: dt.date, end: dt.date) -> dict:
    """Recompute every figure of ``org`` for the local days ``start``..``end`` from the raw rows:
    the cycles of every conversation active in the range, then each day."""
    from apps.billing.models import CostLedger
    from apps.conversations.models import AITurn, Message

    lo, _ = day_bounds(org, start)
    _, hi = day_bounds(org, end)
    conversation_ids: set[int] = set()
    for model, stamp in (
        (Message, "created_at"),
        (AITurn, "created_at"),
        (ConversationEvent, "at"),
    ):
        conversation_ids.update(
            model.objects.filter(org=org, **{f"{stamp}__gte": lo, f"{stamp}__lt": hi})
            .order_by()
            .values_list("conversation_id", flat=True)
            .distinct()
        )
    conversation_ids.update(
        CostLedger.objects.filter(org=org, created_at__gte=lo, created_at__lt=hi)
        .exclude(conversation_id=None)
        .order_by()
        .values_list("conversation_id", flat=True)
        .distinct()
    )
    ordered = sorted(conversation_ids)
    for chunk in chunks(ordered, 5000):
        cycles_refresh(org=org, conversation_ids=chunk)
    days = days_between(start, end)
    rows = 0
    for day in days:
        rows += day_refresh(org=org, day=day)
    cache_invalidate(org_id=org.pk)
    return {"conversations": len(ordered), "days": len(days), "rows": rows}


def sop_recent_refresh(*, since: dt.datetime) -> int:
    """Recompute the SOP figures of the due days of deliveries changed since ``since`` (their
    status moves through bulk updates that send no signal), and of the day before each (a
    reply within 24 h may arrive the next day). Returns the number of org-days refreshed."""
    from apps.sop.models import SopDelivery

    changed: dict[int, set] = defaultdict(set)
    for org_id, due_at in (
        SopDelivery.objects.filter(updated_at__gte=since)
        .order_by()
        .values_list("org_id", "due_at")
        .distinct()
    ):
        changed[org_id].add(due_at)
    count = 0
    for org in Organization.objects.filter(id__in=list(changed)):
        days = {local_day(org, at) for at in changed[org.pk]}
        days |= {d - dt.timedelta(days=1) for d in days}
        for day in sorted(days):
            sop_day_refresh(org=org, day=day)
            count += 1
        cache_invalidate(org_id=org.pk)
    return count
