"""Constants, template variables, time arithmetic, tick outcomes and the helpers shared by
the sop services modules."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core import realtime
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.orgs.models import Organization
from apps.sop import selectors
from apps.sop.models import SopDelivery, SopEnrollment, SopPlan, SopStep
from apps.wechat_accounts.models import Contact, WeChatAccount

Status = SopDelivery.Status
PENDING = (Status.SCHEDULED, Status.PROCESSING, Status.QUEUED)
ENROL = "enrol"
ONCE = "once"

# Skip / stop reasons (machine-readable codes; shown in the admin and the CSV).
R_CANCELLED = "plan_cancelled"
R_STOP_DATE = "plan_stop_date"
R_STEP_REMOVED = "step_removed"
R_REMOVED = "contact_removed"
R_BLOCKED = "contact_blocked"
R_NO_MATCH = "no_longer_matches"
R_CONDITION = "condition_not_met"
R_REPLIED = "contact_replied"
R_HANDOFF = "handed_to_person"
R_STOP_TAG = "stop_tag"
R_MOVED = "moved_to_plan"


# -- templates -----------------------------------------------------------------------------


def contact_variables(contact: Contact, account: WeChatAccount) -> dict[str, Any]:
    variables: dict[str, Any] = {}
    for key, value in (contact.attributes or {}).items():
        if isinstance(key, str) and isinstance(value, str | int | float | bool):
            variables[key] = value
    variables.update(
        nickname=contact.nickname or contact.remark or contact.wxid,
        remark=contact.remark or contact.nickname or "",
        name=contact.display_name,
        account_name=account.nickname or account.name,
    )
    return variables


# -- time ----------------------------------------------------------------------------------


def _localize(naive: datetime, tz: ZoneInfo) -> datetime:
    """A wall-clock time in ``tz`` as an aware UTC instant (gaps move forward, folds take
    the first)."""
    return naive.replace(tzinfo=tz).astimezone(UTC).astimezone(tz)


def step_due_at(step: SopStep, anchor: datetime, tz: ZoneInfo) -> datetime:
    """When ``step`` is due for an enrolment / run starting at ``anchor``.

    Days are calendar days in the organisation's time zone (a day across a DST change keeps the
    wall-clock time); hours and minutes are elapsed time. With ``send_time`` the step goes at
    that local time on the day (never before ``anchor``).
    """
    local = anchor.astimezone(tz)
    if step.send_time is not None:
        day = local.date() + timedelta(days=step.delay_days)
        due = _localize(datetime.combine(day, step.send_time), tz)
    else:
        due = _localize(local.replace(tzinfo=None) + timedelta(days=step.delay_days), tz)
    # Aware arithmetic in a zone is wall-clock arithmetic: add elapsed time in UTC.
    due = due.astimezone(UTC) + timedelta(hours=step.delay_hours, minutes=step.delay_minutes)
    return max(due, anchor)


def quiet_end(start: time | None, end: time | None, tz: ZoneInfo, now: datetime) -> datetime | None:
    """When ``now`` falls in the daily window ``start``-``end`` (local), the window's end."""
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(tz)
    t = local.time().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    return _localize(datetime.combine(end_day, end), tz)


def next_fire_times(plan: SopPlan, *, after: datetime | None = None, count: int = 1) -> list:
    """The next ``count`` fire times of a recurring plan (aware, in the org's time zone)."""
    from croniter import croniter

    if plan.trigger != SopPlan.Trigger.RECURRING or not plan.cron:
        return []
    tz = plan.org.tzinfo
    base = (after or timezone.now()).astimezone(tz)
    itr = croniter(plan.cron, base)
    return [itr.get_next(datetime) for _i in range(count)]


# -- tick results and outcomes ----------------------------------------------------------


@dataclass
class TickResult:
    claimed: int = 0
    queued: int = 0
    skipped: int = 0
    failed: int = 0
    deferred: int = 0
    retried: int = 0
    recovered: int = 0
    synced: int = 0
    plans: set = field(default_factory=set)

    def as_dict(self) -> dict:
        data = {k: v for k, v in vars(self).items() if k != "plans"}
        data["plans"] = sorted(self.plans)
        return data


class _Skip(Exception):
    def __init__(self, reason: str, *, stop: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.stop = stop


class _Fail(Exception):
    pass


class _Retry(Exception):
    pass


class _Defer(Exception):
    def __init__(self, until: datetime):
        super().__init__(str(until))
        self.until = until


def _app_error(exc: ValidationError, prefix: str = "") -> ApplicationError:
    if hasattr(exc, "error_dict"):
        fields = {f"{prefix}{k}": [str(m) for m in v] for k, v in exc.message_dict.items()}
        return ApplicationError(_("Invalid data."), fields=fields)
    return ApplicationError("; ".join(exc.messages))


def _check_same_org(org: Organization, objs, name: str) -> None:
    for obj in objs or []:
        if obj.org_id != org.pk:
            raise ApplicationError(_("Invalid data."), fields={name: [_("Unknown object.")]})


def _plan_for_update(*, org: Organization, plan_id: int) -> SopPlan:
    plan = SopPlan.objects.select_for_update().filter(org=org, pk=plan_id).first()
    if plan is None:
        raise NotFoundError(_("SOP plan not found."))
    return plan


def _push_progress(plan: SopPlan) -> None:
    data = selectors.plan_progress(plan=plan)
    data["runs"] = data["runs"][:5]
    realtime.push_on_commit(
        "sop_progress",
        data,
        groups=[realtime.group_for_monitor(plan.org_id), realtime.group_for_org(plan.org_id)],
    )


RUN_START_TASK = "apps.sop.tasks.sop_run_start"


def _beat_sync(plan: SopPlan) -> None:
    """Create or update the plan's django-celery-beat entry (crontab in the org's time zone),
    enabled while the plan is active."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask

    if plan.trigger != SopPlan.Trigger.RECURRING:
        return
    minute, hour, dom, month, dow = plan.cron.split()
    schedule, _created = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=dom,
        month_of_year=month,
        day_of_week=dow,
        timezone=plan.org.timezone,
    )
    values = {
        "crontab": schedule,
        "task": RUN_START_TASK,
        "kwargs": json.dumps({"org_id": plan.org_id, "plan_id": plan.pk}),
        "enabled": plan.status == SopPlan.Status.ACTIVE,
        "description": f"SOP plan {plan.pk} ({plan.name})"[:200],
    }
    task = plan.periodic_task
    if task is None:
        task, _created = PeriodicTask.objects.update_or_create(
            name=f"sop-plan-{plan.pk}", defaults=values
        )
        plan.periodic_task = task
        SopPlan.objects.filter(pk=plan.pk).update(periodic_task=task)
    else:
        for name, value in values.items():
            setattr(task, name, value)
        task.save()


def _beat_delete(plan: SopPlan) -> None:
    from django_celery_beat.models import PeriodicTask

    PeriodicTask.objects.filter(name=f"sop-plan-{plan.pk}").delete()
    plan.periodic_task = None


def _stop_enrollment(enrollment_id: int, reason: str, now: datetime) -> None:
    with transaction.atomic():
        stopped = SopEnrollment.objects.filter(
            pk=enrollment_id, state=SopEnrollment.State.ACTIVE
        ).update(
            state=SopEnrollment.State.STOPPED, stop_reason=reason, stopped_at=now, updated_at=now
        )
        if stopped:
            SopDelivery.objects.filter(enrollment_id=enrollment_id, status=Status.SCHEDULED).update(
                status=Status.SKIPPED, reason=reason, updated_at=now
            )
