"""Analysis backfills requested in the console (``AnalysisBackfill``): intent and sentiment of
an organisation's earlier customer messages over a range of days, run by a worker on the ``ai``
queue with its progress written to the row.

- ``backfill_request`` validates the range and refuses a second backfill while one is queued or
  running for the organisation (they would bill the same messages twice over with ``redo``).
- ``backfill_run`` claims the row in one conditional UPDATE (queued, or running with no progress
  for ``STALE_AFTER``: its worker died), so a redelivered task never runs it twice at once, and
  calls ``analysis.analysis_backfill`` with a progress callback.
- ``backfills_resume_stale_all_orgs`` (in the core loop's recovery beat) enqueues those whose
  worker died. A resumed run skips messages that already have a result and bills no call twice
  (the ledger's request id names the message), so nothing is lost or paid for twice.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta

from celery.exceptions import SoftTimeLimitExceeded
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations.models import AnalysisBackfill
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.core.secrets import redact

logger = logging.getLogger(__name__)

MAX_DAYS = 366
STALE_AFTER = timedelta(minutes=10)
ACTIVE = (AnalysisBackfill.State.QUEUED, AnalysisBackfill.State.RUNNING)


def _enqueue(backfill: AnalysisBackfill) -> None:
    from apps.conversations.tasks import analysis_backfill_run

    org_id, backfill_id = backfill.org_id, backfill.pk
    transaction.on_commit(
        lambda: analysis_backfill_run.delay(org_id=org_id, backfill_id=backfill_id)
    )


def backfill_check(*, org, first_day: date, last_day: date, mode: str = "") -> None:
    """The request's validation (also what the console form shows): ApplicationError."""
    today = timezone.now().astimezone(org.tzinfo).date()
    if last_day < first_day:
        raise ApplicationError(_("The last day is before the first day."), code="invalid")
    if first_day > today:
        raise ApplicationError(_("The first day is in the future."), code="invalid")
    if (last_day - first_day).days >= MAX_DAYS:
        raise ApplicationError(
            _("Choose at most %(days)d days at a time.") % {"days": MAX_DAYS}, code="invalid"
        )
    if mode not in AnalysisBackfill.Mode.values:
        raise ApplicationError(_("Unknown analysis."), code="invalid")
    if AnalysisBackfill.objects.filter(org=org, state__in=ACTIVE).exists():
        raise ConflictError(
            _("An analysis backfill is already queued or running; wait for it to finish.")
        )


def backfill_request(
    *, org, user=None, first_day: date, last_day: date, mode: str = "", redo: bool = False
) -> AnalysisBackfill:
    """Queue a backfill of [first_day, last_day] (the organisation's days)."""
    backfill_check(org=org, first_day=first_day, last_day=last_day, mode=mode)
    today = timezone.now().astimezone(org.tzinfo).date()
    with transaction.atomic():
        # One at a time per organisation: the organisation row is the lock.
        type(org).objects.select_for_update().filter(pk=org.pk).first()
        if AnalysisBackfill.objects.filter(org=org, state__in=ACTIVE).exists():
            raise ConflictError(
                _("An analysis backfill is already queued or running; wait for it to finish.")
            )
        backfill = AnalysisBackfill.objects.create(
            org=org,
            requested_by=user,
            first_day=first_day,
            last_day=min(last_day, today),
            mode=mode,
            redo=redo,
        )
        _enqueue(backfill)
    return backfill


def _claim(*, org_id: int, backfill_id: int, now: datetime) -> bool:
    stale = Q(state=AnalysisBackfill.State.RUNNING, heartbeat_at__lt=now - STALE_AFTER)
    return bool(
        AnalysisBackfill.objects.filter(org_id=org_id, pk=backfill_id)
        .filter(Q(state=AnalysisBackfill.State.QUEUED) | stale)
        .update(state=AnalysisBackfill.State.RUNNING, started_at=now, heartbeat_at=now)
    )


def backfill_run(*, org_id: int, backfill_id: int) -> str:
    """Run one backfill (idempotent: a row that is not claimable is left alone)."""
    from apps.conversations.analysis import analysis_backfill

    if not _claim(org_id=org_id, backfill_id=backfill_id, now=timezone.now()):
        return "skipped"
    backfill = AnalysisBackfill.objects.select_related("org").get(org_id=org_id, pk=backfill_id)
    org = backfill.org
    rows = AnalysisBackfill.objects.filter(org_id=org_id, pk=backfill_id)
    tz = org.tzinfo
    start = timezone.make_aware(datetime.combine(backfill.first_day, time.min), tz)
    end = timezone.make_aware(datetime.combine(backfill.last_day + timedelta(days=1), time.min), tz)

    def progress(done: int, total: int) -> None:
        rows.update(done=done, total=total, heartbeat_at=timezone.now())

    try:
        result = analysis_backfill(
            org=org,
            start=start,
            end=end,
            mode=backfill.mode or None,
            redo=backfill.redo,
            progress=progress,
        )
    except SoftTimeLimitExceeded:
        # A long range: hand over to a fresh task, which skips what is analysed already.
        rows.update(state=AnalysisBackfill.State.QUEUED, heartbeat_at=timezone.now())
        _enqueue(backfill)
        return "continued"
    except Exception as exc:
        logger.exception("analysis backfill %s failed", backfill_id)
        rows.update(
            state=AnalysisBackfill.State.FAILED,
            error=redact(f"{type(exc).__name__}: {exc}")[:300],
            finished_at=timezone.now(),
        )
        return "failed"
    rows.update(
        state=AnalysisBackfill.State.DONE,
        total=result.total,
        done=result.analysed + result.failed,
        analysed=result.analysed,
        failed=result.failed,
        finished_at=timezone.now(),
        heartbeat_at=timezone.now(),
    )
    return "done"


def backfills_resume_stale_all_orgs(*, now: datetime | None = None) -> int:
    """Enqueue the backfills whose worker died (running with no progress for STALE_AFTER) and
    queued ones whose task was lost (queued for as long)."""
    now = now or timezone.now()
    stale = AnalysisBackfill.objects.filter(
        Q(state=AnalysisBackfill.State.RUNNING, heartbeat_at__lt=now - STALE_AFTER)
        | Q(state=AnalysisBackfill.State.QUEUED, created_at__lt=now - STALE_AFTER)
    ).only("pk", "org_id")
    count = 0
    for backfill in stale:
        _enqueue(backfill)
        count += 1
    return count


def backfill_retry(*, org, backfill_id: int) -> AnalysisBackfill:
    """Queue a failed backfill again (what it analysed already is skipped and not re-billed)."""
    if AnalysisBackfill.objects.filter(org=org, state__in=ACTIVE).exists():
        raise ConflictError(
            _("An analysis backfill is already queued or running; wait for it to finish.")
        )
    updated = AnalysisBackfill.objects.filter(
        org=org, pk=backfill_id, state=AnalysisBackfill.State.FAILED
    ).update(state=AnalysisBackfill.State.QUEUED, error="", finished_at=None)
    backfill = AnalysisBackfill.objects.filter(org=org, pk=backfill_id).first()
    if backfill is None:
        raise NotFoundError(_("Analysis backfill not found."))
    if updated:
        _enqueue(backfill)
    return backfill
