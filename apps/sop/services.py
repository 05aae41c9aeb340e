"""Writes of the sop app: plans and steps, activation and the plan's life cycle, runs and
enrolments (expansion into deliveries), the tick that hands due deliveries to the outbound
pipeline, dry runs and estimates.

Functions other apps call:

- ``sop_tick(*, org_id, now=None) -> TickResult``: one pass of the scheduler for one org.
- ``sop_run_start(*, org_id, plan_id, at=None) -> SopRun | None``: a once / recurring occurrence.
- ``contact_added(*, org_id, contact_id)`` / ``tag_applied(*, org_id, contact_id, tag_id)``:
  relative triggers (wired to ``apps.core.events`` in ``apps.sop.receivers``).

Exactly once: each (plan, contact, step, occurrence) has one ``SopDelivery`` row (unique). The
tick claims due rows (``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL plus a conditional
``scheduled -> processing`` update with a claim token, which alone suffices on SQLite), and moves
``processing -> queued`` in the same transaction that creates the pipeline's Message, whose
idempotency key is the delivery id. A crashed worker's claim expires and is retried; the key
makes the retry return the same Message.
"""

from __future__ import annotations

import io
import json
import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations.models import Conversation, Message
from apps.core import csv_export, realtime
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.core.templating import render_template
from apps.orgs.models import Organization
from apps.sop import selectors
from apps.sop.models import SopDelivery, SopEnrollment, SopPlan, SopRun, SopStep
from apps.wechat_accounts.models import Contact, Tag, WeChatAccount

logger = logging.getLogger(__name__)

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


# -- plans and steps -----------------------------------------------------------------------

PLAN_FIELDS = {
    "name",
    "description",
    "owner",
    "target_type",
    "target_contact_ids",
    "tag_match",
    "trigger",
    "start_at",
    "cron",
    "relative_event",
    "relative_tag",
    "enroll_existing",
    "stop_on_reply",
    "stop_on_handoff",
    "stop_tag",
    "stop_after",
    "quiet_hours_mode",
    "quiet_hours_start",
    "quiet_hours_end",
    "ai_app",
}
STEP_FIELDS = {
    "order",
    "delay_days",
    "delay_hours",
    "delay_minutes",
    "send_time",
    "kind",
    "text",
    "url",
    "file_name",
    "title",
    "description",
    "ai_prompt",
    "condition",
    "condition_tag",
    "end_action",
    "end_tag",
    "end_plan",
}
# Changing these on an active plan changes who is targeted or when: allowed, applied to
# deliveries not yet queued.
M2M_FIELDS = ("accounts", "include_tags", "exclude_tags")


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


@transaction.atomic
def plan_create(
    *,
    org: Organization,
    user=None,
    steps: list[dict] | None = None,
    accounts: list[WeChatAccount] | None = None,
    include_tags: list[Tag] | None = None,
    exclude_tags: list[Tag] | None = None,
    **fields: Any,
) -> SopPlan:
    """A draft plan with its steps (each a dict of ``SopStep`` fields)."""
    unknown = set(fields) - PLAN_FIELDS
    if unknown:
        raise ApplicationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    if SopPlan.objects.filter(org=org, name=fields.get("name", "")).exists():
        raise ApplicationError(
            _("Invalid data."), fields={"name": [_("A plan with this name exists.")]}
        )
    plan = SopPlan(org=org, created_by=user, owner=fields.pop("owner", None) or user, **fields)
    try:
        plan.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise _app_error(exc) from exc
    plan.save()
    _set_m2m(plan, accounts=accounts, include_tags=include_tags, exclude_tags=exclude_tags)
    _sync_steps(plan, steps or [])
    return plan


def _set_m2m(plan: SopPlan, **m2m: list | None) -> None:
    for name, objs in m2m.items():
        if objs is None:
            continue
        _check_same_org(plan.org, objs, name)
        getattr(plan, name).set(objs)


def _sync_steps(plan: SopPlan, steps: list[dict]) -> None:
    """Make the plan's active steps equal ``steps`` (dicts; ``id`` updates an existing step).
    A step left out is deleted, or made inactive if it has deliveries (history stays)."""
    existing = {s.pk: s for s in SopStep.objects.filter(plan=plan, is_active=True)}
    keep: set[int] = set()
    for index, data in enumerate(steps):
        data = dict(data)
        step_id = data.pop("id", None)
        unknown = set(data) - STEP_FIELDS
        if unknown:
            raise ApplicationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
        data.setdefault("order", index)
        if step_id is not None:
            step = existing.get(step_id)
            if step is None:
                raise ApplicationError(
                    _("Invalid data."), fields={f"steps.{index}.id": [_("Unknown step.")]}
                )
            for name, value in data.items():
                setattr(step, name, value)
        else:
            step = SopStep(org=plan.org, plan=plan, **data)
        try:
            step.full_clean(validate_constraints=False)
        except ValidationError as exc:
            raise _app_error(exc, prefix=f"steps.{index}.") from exc
        step.save()
        keep.add(step.pk)
    for step_id, step in existing.items():
        if step_id in keep:
            continue
        if step.deliveries.exists():
            step.is_active = False
            step.save(update_fields=["is_active", "updated_at"])
            step.deliveries.filter(status=Status.SCHEDULED).update(
                status=Status.SKIPPED, reason=R_STEP_REMOVED, updated_at=timezone.now()
            )
        else:
            step.delete()


@transaction.atomic
def plan_update(
    *,
    org: Organization,
    plan_id: int,
    steps: list[dict] | None = None,
    accounts: list[WeChatAccount] | None = None,
    include_tags: list[Tag] | None = None,
    exclude_tags: list[Tag] | None = None,
    **fields: Any,
) -> SopPlan:
    """Edit a plan. On an active or paused plan the change applies to deliveries not yet
    queued: content is rendered when a delivery is handed over, new steps get deliveries for
    active enrolments, changed offsets move the due time of scheduled deliveries."""
    plan = _plan_for_update(org=org, plan_id=plan_id)
    if plan.status in (SopPlan.Status.FINISHED, SopPlan.Status.CANCELLED):
        raise ConflictError(_("A finished or cancelled plan cannot be edited."))
    unknown = set(fields) - PLAN_FIELDS
    if unknown:
        raise ApplicationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    if plan.status != SopPlan.Status.DRAFT and "trigger" in fields:
        if fields["trigger"] != plan.trigger:
            raise ConflictError(_("The trigger of an activated plan cannot change."))
    if "name" in fields and (
        SopPlan.objects.filter(org=org, name=fields["name"]).exclude(pk=plan.pk).exists()
    ):
        raise ApplicationError(
            _("Invalid data."), fields={"name": [_("A plan with this name exists.")]}
        )
    for name, value in fields.items():
        setattr(plan, name, value)
    try:
        plan.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise _app_error(exc) from exc
    plan.save()
    _set_m2m(plan, accounts=accounts, include_tags=include_tags, exclude_tags=exclude_tags)
    if steps is not None:
        _sync_steps(plan, steps)
    if plan.status in (SopPlan.Status.ACTIVE, SopPlan.Status.PAUSED):
        plan_reschedule(plan=plan)
        if plan.trigger == SopPlan.Trigger.RECURRING:
            _beat_sync(plan)
    return plan


def plan_reschedule(*, plan: SopPlan) -> int:
    """After an edit: recompute the due time of scheduled deliveries and create the deliveries
    of new steps for active enrolments. Returns the deliveries created."""
    tz = plan.org.tzinfo
    steps = list(selectors.plan_steps(plan=plan))
    for step in steps:
        for enrollment_id, anchor in _enrollment_anchors(plan):
            SopDelivery.objects.filter(
                plan=plan, step=step, enrollment_id=enrollment_id, status=Status.SCHEDULED
            ).update(due_at=step_due_at(step, anchor, tz), updated_at=timezone.now())
    created = 0
    enrollments = SopEnrollment.objects.filter(plan=plan, state=SopEnrollment.State.ACTIVE)
    for enrollment in enrollments.select_related("contact"):
        created += _create_deliveries(plan, [enrollment], steps)
    return created


def _enrollment_anchors(plan: SopPlan):
    return SopEnrollment.objects.filter(plan=plan, state=SopEnrollment.State.ACTIVE).values_list(
        "id", "enrolled_at"
    )


@transaction.atomic
def plan_delete(*, org: Organization, plan_id: int) -> None:
    plan = _plan_for_update(org=org, plan_id=plan_id)
    if plan.status in (SopPlan.Status.ACTIVE, SopPlan.Status.PAUSED):
        raise ConflictError(_("Cancel the plan before deleting it."))
    _beat_delete(plan)
    SopDelivery.objects.filter(plan=plan).delete()
    plan.delete()


# -- life cycle ----------------------------------------------------------------------------


def _push_progress(plan: SopPlan) -> None:
    data = selectors.plan_progress(plan=plan)
    data["runs"] = data["runs"][:5]
    realtime.push_on_commit(
        "sop_progress",
        data,
        groups=[realtime.group_for_monitor(plan.org_id), realtime.group_for_org(plan.org_id)],
    )


@transaction.atomic
def plan_activate(*, org: Organization, plan_id: int, user=None) -> SopPlan:
    """Draft -> active: a once plan starts its run (deliveries from ``start_at``), a recurring
    plan gets its beat entry, a relative plan enrols the matching contacts if it says so."""
    plan = _plan_for_update(org=org, plan_id=plan_id)
    if plan.status != SopPlan.Status.DRAFT:
        raise ConflictError(_("Only a draft plan can be activated."))
    if not plan.accounts.exists():
        raise ApplicationError(
            _("Invalid data."), fields={"accounts": [_("Choose at least one account.")]}
        )
    if not selectors.plan_steps(plan=plan).exists():
        raise ApplicationError(_("Invalid data."), fields={"steps": [_("Add at least one step.")]})
    try:
        plan.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise _app_error(exc) from exc
    now = timezone.now()
    plan.status = SopPlan.Status.ACTIVE
    plan.activated_at = now
    plan.save(update_fields=["status", "activated_at", "updated_at"])
    if plan.trigger == SopPlan.Trigger.ONCE:
        _run_create(plan, occurrence=ONCE, anchor=max(plan.start_at or now, now))
    elif plan.trigger == SopPlan.Trigger.RECURRING:
        _beat_sync(plan)
    elif plan.enroll_existing:
        _enrol_many(plan, selectors.plan_targets(plan=plan), anchor=now, occurrence=ENROL)
    _push_progress(plan)
    return plan


@transaction.atomic
def plan_pause(*, org: Organization, plan_id: int) -> SopPlan:
    """Active -> paused: nothing more is handed to the pipeline (already queued messages go)."""
    plan = _plan_for_update(org=org, plan_id=plan_id)
    if plan.status != SopPlan.Status.ACTIVE:
        raise ConflictError(_("Only an active plan can be paused."))
    plan.status = SopPlan.Status.PAUSED
    plan.save(update_fields=["status", "updated_at"])
    _beat_sync(plan)
    _push_progress(plan)
    return plan


@transaction.atomic
def plan_resume(*, org: Organization, plan_id: int) -> SopPlan:
    """Paused -> active: overdue deliveries go out at the pipeline's pace."""
    plan = _plan_for_update(org=org, plan_id=plan_id)
    if plan.status != SopPlan.Status.PAUSED:
        raise ConflictError(_("Only a paused plan can be resumed."))
    plan.status = SopPlan.Status.ACTIVE
    plan.save(update_fields=["status", "updated_at"])
    _beat_sync(plan)
    _push_progress(plan)
    return plan


@transaction.atomic
def plan_cancel(*, org: Organization, plan_id: int) -> SopPlan:
    """Cancel: every delivery not yet queued is skipped, runs and enrolments end."""
    plan = _plan_for_update(org=org, plan_id=plan_id)
    if plan.status in (SopPlan.Status.FINISHED, SopPlan.Status.CANCELLED):
        raise ConflictError(_("The plan has already ended."))
    now = timezone.now()
    plan.status = SopPlan.Status.CANCELLED
    plan.finished_at = now
    plan.save(update_fields=["status", "finished_at", "updated_at"])
    _beat_delete(plan)
    SopDelivery.objects.filter(plan=plan, status=Status.SCHEDULED).update(
        status=Status.SKIPPED, reason=R_CANCELLED, updated_at=now
    )
    SopEnrollment.objects.filter(plan=plan, state=SopEnrollment.State.ACTIVE).update(
        state=SopEnrollment.State.STOPPED, stop_reason=R_CANCELLED, stopped_at=now, updated_at=now
    )
    SopRun.objects.filter(plan=plan, status=SopRun.Status.RUNNING).update(
        status=SopRun.Status.CANCELLED, finished_at=now, updated_at=now
    )
    _push_progress(plan)
    return plan


# -- beat ----------------------------------------------------------------------------------

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


# -- runs and enrolment --------------------------------------------------------------------


def _run_create(plan: SopPlan, *, occurrence: str, anchor: datetime) -> SopRun | None:
    try:
        with transaction.atomic():
            run = SopRun.objects.create(
                org_id=plan.org_id, plan=plan, occurrence=occurrence, started_at=anchor
            )
    except IntegrityError:
        return None  # this occurrence has started already (another beat, a re-run)
    count = _enrol_many(
        plan, selectors.plan_targets(plan=plan), anchor=anchor, occurrence=occurrence, run=run
    )
    SopRun.objects.filter(pk=run.pk).update(target_count=count)
    run.target_count = count
    return run


def sop_run_start(*, org_id: int, plan_id: int, at: datetime | None = None) -> SopRun | None:
    """Start the occurrence of a recurring plan that is due at ``at`` (default now): the latest
    cron fire time not after it. Idempotent per occurrence; None if not active or started."""
    from croniter import croniter

    with transaction.atomic():
        plan = (
            SopPlan.objects.select_for_update()
            .select_related("org")
            .filter(org_id=org_id, pk=plan_id)
            .first()
        )
        if plan is None or plan.status != SopPlan.Status.ACTIVE:
            return None
        now = at or timezone.now()
        if plan.stop_after and now >= plan.stop_after:
            return None
        if plan.trigger == SopPlan.Trigger.RECURRING:
            local = now.astimezone(plan.org.tzinfo)
            fire = croniter(plan.cron, local + timedelta(seconds=1)).get_prev(datetime)
            occurrence = fire.isoformat(timespec="minutes")
            run = _run_create(plan, occurrence=occurrence, anchor=fire.astimezone(UTC))
        elif plan.trigger == SopPlan.Trigger.ONCE:
            run = _run_create(plan, occurrence=ONCE, anchor=max(plan.start_at or now, now))
        else:
            return None
        if run is not None:
            _push_progress(plan)
        return run


def _enrol_many(
    plan: SopPlan,
    contacts,
    *,
    anchor: datetime,
    occurrence: str,
    run: SopRun | None = None,
    batch_size: int = 2000,
) -> int:
    """Enrol contacts (a queryset or list) and create their deliveries; already enrolled
    contacts (same occurrence) are left alone. Returns the contacts enrolled now."""
    steps = list(selectors.plan_steps(plan=plan))
    rows = (
        list(contacts.values_list("id", "account_id"))
        if hasattr(contacts, "values_list")
        else [(c.pk, c.account_id) for c in contacts]
    )
    enrolled = 0
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        contact_ids = [cid for cid, _acct in chunk]
        before = set(
            SopEnrollment.objects.filter(
                plan=plan, occurrence=occurrence, contact_id__in=contact_ids
            ).values_list("contact_id", flat=True)
        )
        new = [
            SopEnrollment(
                org_id=plan.org_id,
                plan=plan,
                run=run,
                contact_id=cid,
                occurrence=occurrence,
                enrolled_at=anchor,
            )
            for cid, _acct in chunk
            if cid not in before
        ]
        SopEnrollment.objects.bulk_create(new, ignore_conflicts=True, batch_size=batch_size)
        fresh = list(
            SopEnrollment.objects.filter(
                plan=plan,
                occurrence=occurrence,
                contact_id__in=[e.contact_id for e in new],
                state=SopEnrollment.State.ACTIVE,
            ).select_related("contact")
        )
        enrolled += len(fresh)
        _create_deliveries(plan, fresh, steps, batch_size=batch_size)
    return enrolled


def _create_deliveries(
    plan: SopPlan, enrollments: list, steps: list[SopStep], *, batch_size: int = 2000
) -> int:
    tz = plan.org.tzinfo
    now = timezone.now()
    dues: dict = {}
    rows = []
    for enrollment in enrollments:
        for step in steps:
            # Steps are relative to the anchor; most enrolments of a run share it.
            key = (step.pk, enrollment.enrolled_at)
            due = dues.get(key)
            if due is None:
                due = step_due_at(step, enrollment.enrolled_at, tz)
                dues[key] = due
            rows.append(
                SopDelivery(
                    org_id=plan.org_id,
                    plan=plan,
                    run_id=enrollment.run_id,
                    enrollment=enrollment,
                    step=step,
                    contact_id=enrollment.contact_id,
                    account_id=enrollment.contact.account_id,
                    occurrence=enrollment.occurrence,
                    due_at=due,
                    created_at=now,
                    updated_at=now,
                )
            )
    created = SopDelivery.objects.bulk_create(rows, ignore_conflicts=True, batch_size=batch_size)
    return len(created)


def enrol_contact(
    *, plan: SopPlan, contact: Contact, anchor: datetime | None = None, check_match: bool = True
) -> SopEnrollment | None:
    """Enrol one contact into an active plan (idempotent: once per plan); returns the new
    enrolment, or None when the contact was enrolled before or does not match."""
    if plan.status != SopPlan.Status.ACTIVE:
        return None
    if check_match and not selectors.contact_matches(plan=plan, contact_id=contact.pk):
        return None
    if plan.trigger == SopPlan.Trigger.RELATIVE:
        occurrence = ENROL
    else:  # moved into a once / recurring plan: its own occurrence per contact
        occurrence = R_MOVED
    with transaction.atomic():
        enrolled = _enrol_many(
            plan, [contact], anchor=anchor or timezone.now(), occurrence=occurrence
        )
    if not enrolled:
        return None  # enrolled before: once per plan and contact
    return SopEnrollment.objects.filter(plan=plan, contact=contact, occurrence=occurrence).first()


def _relative_plans(org_id: int, event: str, contact: Contact):
    return SopPlan.objects.filter(
        org_id=org_id,
        status=SopPlan.Status.ACTIVE,
        trigger=SopPlan.Trigger.RELATIVE,
        relative_event=event,
        accounts=contact.account_id,
    ).select_related("org")


def contact_added(*, org_id: int, contact_id: int, at: datetime | None = None) -> int:
    """A friend was added: enrol them into the org's active "after a friend was added" plans."""
    contact = Contact.objects.filter(org_id=org_id, pk=contact_id).first()
    if contact is None or contact.kind != Contact.Kind.FRIEND:
        return 0
    count = 0
    for plan in _relative_plans(org_id, SopPlan.RelativeEvent.CONTACT_ADDED, contact):
        if enrol_contact(plan=plan, contact=contact, anchor=at):
            count += 1
    return count


def tag_applied(*, org_id: int, contact_id: int, tag_id: int, at: datetime | None = None) -> int:
    """A tag was applied: enrol the contact into active "after the tag was applied" plans."""
    contact = Contact.objects.filter(org_id=org_id, pk=contact_id).first()
    if contact is None:
        return 0
    count = 0
    plans = _relative_plans(org_id, SopPlan.RelativeEvent.TAG_APPLIED, contact).filter(
        relative_tag_id=tag_id
    )
    for plan in plans:
        if enrol_contact(plan=plan, contact=contact, anchor=at):
            count += 1
    return count


# -- the tick ------------------------------------------------------------------------------


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


def claim_due(
    *, org_id: int | None = None, now: datetime | None = None, limit: int | None = None
) -> tuple[str, list[int]]:
    """Claim up to ``limit`` due deliveries of active plans: ``scheduled -> processing`` with a
    fresh claim token and a lease. Concurrent claimers never get the same row (PostgreSQL: the
    rows are locked with SKIP LOCKED; any database: the update is conditional)."""
    now = now or timezone.now()
    limit = limit or settings.SOP_TICK_BATCH
    token = uuid.uuid4().hex
    lease = timedelta(seconds=settings.SOP_CLAIM_LEASE_SECONDS)
    with transaction.atomic():
        qs = SopDelivery.objects.filter(
            status=Status.SCHEDULED, due_at__lte=now, plan__status=SopPlan.Status.ACTIVE
        )
        if org_id is not None:
            qs = qs.filter(org_id=org_id)
        if connection.features.has_select_for_update_skip_locked:
            qs = qs.select_for_update(skip_locked=True, of=("self",))
        ids = list(qs.order_by("due_at", "id").values_list("id", flat=True)[:limit])
        if not ids:
            return token, []
        SopDelivery.objects.filter(id__in=ids, status=Status.SCHEDULED).update(
            status=Status.PROCESSING,
            claim_token=token,
            lease_expires_at=now + lease,
            attempts=F("attempts") + 1,
            updated_at=now,
        )
    claimed = list(
        SopDelivery.objects.filter(claim_token=token, status=Status.PROCESSING)
        .order_by("due_at", "step__order", "id")
        .values_list("id", flat=True)
    )
    return token, claimed


def _recover_expired(org_id: int, now: datetime) -> int:
    """Claims of crashed workers go back to ``scheduled`` (their Message, if it was created,
    is found again by its idempotency key)."""
    return SopDelivery.objects.filter(
        org_id=org_id, status=Status.PROCESSING, lease_expires_at__lt=now
    ).update(status=Status.SCHEDULED, claim_token="", lease_expires_at=None, updated_at=now)


def sop_tick(*, org_id: int, now: datetime | None = None, limit: int | None = None) -> TickResult:
    """One pass of the scheduler for one organisation: recover expired claims, claim due
    deliveries and hand them to the pipeline (or skip / defer / fail them with a reason),
    mirror the pipeline's sent / failed into the deliveries, run end actions, finish
    enrolments, runs and plans, and push progress."""
    now = now or timezone.now()
    result = TickResult()
    result.recovered = _recover_expired(org_id, now)
    _stop_expired_plans(org_id, now, result)
    token, ids = claim_due(org_id=org_id, now=now, limit=limit)
    result.claimed = len(ids)
    for delivery_id in ids:
        outcome, plan_id = process_delivery(delivery_id=delivery_id, token=token, now=now)
        setattr(result, outcome, getattr(result, outcome) + 1)
        if plan_id:
            result.plans.add(plan_id)
    result.synced = _sync_from_pipeline(org_id, result)
    _finish_done(org_id, result.plans)
    for plan in SopPlan.objects.filter(org_id=org_id, pk__in=result.plans).select_related("org"):
        _push_progress(plan)
    return result


def _stop_expired_plans(org_id: int, now: datetime, result: TickResult) -> None:
    plans = SopPlan.objects.filter(
        org_id=org_id,
        status__in=[SopPlan.Status.ACTIVE, SopPlan.Status.PAUSED],
        stop_after__isnull=False,
        stop_after__lte=now,
    )
    for plan in plans:
        with transaction.atomic():
            SopDelivery.objects.filter(plan=plan, status=Status.SCHEDULED).update(
                status=Status.SKIPPED, reason=R_STOP_DATE, updated_at=now
            )
            SopEnrollment.objects.filter(plan=plan, state=SopEnrollment.State.ACTIVE).update(
                state=SopEnrollment.State.STOPPED,
                stop_reason=R_STOP_DATE,
                stopped_at=now,
                updated_at=now,
            )
            SopPlan.objects.filter(pk=plan.pk).update(
                status=SopPlan.Status.FINISHED, finished_at=now, updated_at=now
            )
            _beat_delete(plan)
        result.plans.add(plan.pk)


def _release(delivery_id: int, token: str, **fields: Any) -> bool:
    fields.setdefault("updated_at", timezone.now())
    return bool(
        SopDelivery.objects.filter(
            pk=delivery_id, claim_token=token, status=Status.PROCESSING
        ).update(claim_token="", lease_expires_at=None, **fields)
    )


def process_delivery(
    *, delivery_id: int, token: str, now: datetime | None = None
) -> tuple[str, int | None]:
    """Hand one claimed delivery to the pipeline, or skip / defer / fail / retry it.
    Returns (outcome, plan id). Runs outside a transaction (an AI step calls the network)."""
    now = now or timezone.now()
    delivery = (
        SopDelivery.objects.select_related(
            "plan", "plan__org", "step", "contact", "account", "account__org", "enrollment"
        )
        .filter(pk=delivery_id, claim_token=token, status=Status.PROCESSING)
        .first()
    )
    if delivery is None:
        return "skipped", None
    plan = delivery.plan
    try:
        _check(delivery, now)
        text = delivery.rendered_text or _render(delivery)
        if not delivery.rendered_text and text:
            SopDelivery.objects.filter(pk=delivery.pk).update(rendered_text=text)
            delivery.rendered_text = text
        with transaction.atomic():
            message = _send(delivery, text)
            moved = SopDelivery.objects.filter(
                pk=delivery.pk, claim_token=token, status=Status.PROCESSING
            ).update(
                status=Status.QUEUED,
                message=message,
                queued_at=timezone.now(),
                lease_expires_at=None,
                reason="",
                updated_at=timezone.now(),
            )
            if not moved:  # the claim expired and another worker took over: undo ours
                transaction.set_rollback(True)
                return "skipped", plan.pk
        return "queued", plan.pk
    except _Skip as exc:
        if exc.stop:
            _stop_enrollment(delivery.enrollment_id, exc.reason, now)
        _release(delivery.pk, token, status=Status.SKIPPED, reason=exc.reason)
        return "skipped", plan.pk
    except _Defer as exc:
        _release(
            delivery.pk,
            token,
            status=Status.SCHEDULED,
            due_at=exc.until,
            attempts=F("attempts") - 1,
        )
        return "deferred", plan.pk
    except _Retry as exc:
        if delivery.attempts >= settings.SOP_MAX_ATTEMPTS:
            _release(delivery.pk, token, status=Status.FAILED, reason=str(exc)[:300])
            return "failed", plan.pk
        backoff = settings.SOP_RETRY_BASE_SECONDS * 2 ** (delivery.attempts - 1)
        _release(
            delivery.pk,
            token,
            status=Status.SCHEDULED,
            reason=str(exc)[:300],
            due_at=now + timedelta(seconds=backoff * random.uniform(1.0, 1.25)),
        )
        return "retried", plan.pk
    except (_Fail, ApplicationError) as exc:
        _release(delivery.pk, token, status=Status.FAILED, reason=str(exc)[:300])
        return "failed", plan.pk


def _check(delivery: SopDelivery, now: datetime) -> None:
    """Raise ``_Skip`` / ``_Defer`` when the delivery must not go now."""
    plan, step, contact = delivery.plan, delivery.step, delivery.contact
    if plan.status != SopPlan.Status.ACTIVE:
        raise _Defer(delivery.due_at)  # paused after the claim: back to scheduled
    if plan.stop_after and now >= plan.stop_after:
        raise _Skip(R_STOP_DATE, stop=True)
    enrollment = delivery.enrollment
    if enrollment.state != SopEnrollment.State.ACTIVE:
        raise _Skip(enrollment.stop_reason or enrollment.state)
    if not step.is_active:
        raise _Skip(R_STEP_REMOVED)
    if contact.removed_at is not None:
        raise _Skip(R_REMOVED, stop=True)
    if contact.is_blocked:
        raise _Skip(R_BLOCKED, stop=True)
    if not selectors.contact_matches(plan=plan, contact_id=contact.pk):
        raise _Skip(R_NO_MATCH, stop=True)
    tag_ids = set(contact.tags.values_list("pk", flat=True))
    if plan.stop_tag_id and plan.stop_tag_id in tag_ids:
        raise _Skip(R_STOP_TAG, stop=True)
    conversations = Conversation.objects.filter(org_id=plan.org_id, contact=contact)
    if plan.stop_on_handoff and conversations.filter(mode=Conversation.Mode.HUMAN).exists():
        raise _Skip(R_HANDOFF, stop=True)
    if plan.stop_on_reply and (
        Message.objects.filter(
            org_id=plan.org_id,
            conversation__in=conversations,
            direction=Message.Direction.INBOUND,
            created_at__gt=enrollment.enrolled_at,
        ).exists()
    ):
        raise _Skip(R_REPLIED, stop=True)
    if step.condition == SopStep.Condition.HAS_TAG and step.condition_tag_id not in tag_ids:
        raise _Skip(R_CONDITION)
    if step.condition == SopStep.Condition.LACKS_TAG and step.condition_tag_id in tag_ids:
        raise _Skip(R_CONDITION)
    if plan.quiet_hours_mode == SopPlan.QuietHoursMode.CUSTOM:
        end = quiet_end(plan.quiet_hours_start, plan.quiet_hours_end, plan.org.tzinfo, now)
        if end is not None:
            raise _Defer(end)
    if delivery.account.status == WeChatAccount.Status.BANNED:
        raise _Fail(_("The WeChat account is banned."))


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


def _render(delivery: SopDelivery) -> str:
    step = delivery.step
    variables = contact_variables(delivery.contact, delivery.account)
    if step.kind == SopStep.Kind.AI:
        return _ai_text(delivery, variables)
    if step.kind == SopStep.Kind.TEXT:
        return render_template(step.text, variables)
    return render_template(step.text, variables) if step.text else ""


def _recent_messages(delivery: SopDelivery, limit: int = 10) -> str:
    rows = (
        Message.objects.filter(
            org_id=delivery.org_id,
            conversation__contact_id=delivery.contact_id,
            kind=Message.Kind.TEXT,
        )
        .order_by("-created_at", "-id")
        .values_list("direction", "text")[:limit]
    )
    lines = []
    for direction, text in reversed(list(rows)):
        who = "customer" if direction == Message.Direction.INBOUND else "us"
        lines.append(f"{who}: {text}")
    return "\n".join(lines)


def _ai_app_for(delivery: SopDelivery):
    from apps.integrations import selectors as integration_selectors

    plan, account = delivery.plan, delivery.account
    for app_id in (plan.ai_app_id, account.default_ai_app_id):
        if app_id:
            app = integration_selectors.ai_app_get(org=plan.org_id, ai_app_id=app_id)
            if app is not None and app.enabled:
                return app
    return integration_selectors.ai_app_default(org=plan.org_id)


def _ai_text(delivery: SopDelivery, variables: dict) -> str:
    """Generate the personalised text through the AI app, reserved and billed (ledger row with
    request id ``sop-delivery-<id>``, the run id and the account)."""
    from apps.billing import services as billing
    from apps.integrations.clients import errors as client_errors
    from apps.integrations.services import ai_chat

    app = _ai_app_for(delivery)
    if app is None:
        raise _Fail(_("No AI app is configured for this plan, account or organisation."))
    contact = delivery.contact
    profile = ", ".join(
        f"{k}={v}"
        for k, v in {
            "nickname": contact.nickname,
            "remark": contact.remark,
            "tags": " ".join(contact.tags.values_list("name", flat=True)),
            **{k: v for k, v in (contact.attributes or {}).items() if isinstance(k, str)},
        }.items()
        if v
    )
    prompt = render_template(
        delivery.step.ai_prompt,
        {**variables, "profile": profile, "recent_messages": _recent_messages(delivery)},
    )
    messages = [{"role": "user", "content": prompt}]
    try:
        reservation = billing.reserve(
            org=delivery.plan.org,
            provider=app.provider,
            model=app.model or app.provider,
            kind="chat",
            estimated_input_tokens=billing.estimate_tokens(messages),
            request_id=f"sop-delivery-{delivery.pk}",
            wechat_account_id=delivery.account_id,
            sop_run_id=delivery.run_id,
        )
    except billing.BudgetExceeded as exc:
        raise _Fail(f"budget_exceeded: {exc}") from exc
    try:
        result = ai_chat(ai_app=app, messages=messages, user=f"sop-contact-{contact.pk}")
    except client_errors.IntegrationError as exc:
        billing.release(reservation=reservation)
        raise _Retry(f"ai_error: {type(exc).__name__}: {exc}") from exc
    except ApplicationError as exc:
        billing.release(reservation=reservation)
        raise _Fail(str(exc)) from exc
    billing.settle(
        reservation=reservation,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        provider_cost=result.provider_cost,
        provider_currency=result.currency,
    )
    text = (result.text or "").strip()
    if not text:
        raise _Fail(_("The AI app answered with no text."))
    return text


def _send(delivery: SopDelivery, text: str) -> Message:
    from apps.wechat_accounts.services import send

    step, plan = delivery.step, delivery.plan
    kind = Message.Kind.TEXT if step.kind == SopStep.Kind.AI else step.kind
    return send(
        org=plan.org,
        account=delivery.account,
        to_wxid=delivery.contact.wxid,
        kind=kind,
        text=text,
        url=step.url,
        file_name=step.file_name,
        title=step.title,
        description=step.description,
        sender_kind=Message.SenderKind.SOP,
        urgent=plan.quiet_hours_mode != SopPlan.QuietHoursMode.ACCOUNT,
        client_msg_id=f"sop-delivery-{delivery.pk}",
    )


def _sync_from_pipeline(org_id: int, result: TickResult) -> int:
    """Mirror the pipeline's final message states into queued deliveries; run end actions of
    steps that were sent."""
    rows = list(
        SopDelivery.objects.filter(
            org_id=org_id,
            status=Status.QUEUED,
            message__status__in=[Message.Status.SENT, Message.Status.FAILED],
        ).values_list("id", "plan_id", "message__status", "message__sent_at", "message__error")
    )
    now = timezone.now()
    for delivery_id, plan_id, status, sent_at, error in rows:
        if status == Message.Status.SENT:
            changed = SopDelivery.objects.filter(pk=delivery_id, status=Status.QUEUED).update(
                status=Status.SENT, sent_at=sent_at, updated_at=now
            )
            if changed:
                _end_action(delivery_id)
        else:
            SopDelivery.objects.filter(pk=delivery_id, status=Status.QUEUED).update(
                status=Status.FAILED, reason=(error or "")[:300], updated_at=now
            )
        result.plans.add(plan_id)
    return len(rows)


def _end_action(delivery_id: int) -> None:
    delivery = SopDelivery.objects.select_related("step", "contact", "plan", "plan__org").get(
        pk=delivery_id
    )
    step, contact = delivery.step, delivery.contact
    if step.end_action == SopStep.EndAction.ADD_TAG and step.end_tag_id:
        contact.tags.add(step.end_tag_id)
    elif step.end_action == SopStep.EndAction.REMOVE_TAG and step.end_tag_id:
        contact.tags.remove(step.end_tag_id)
    elif step.end_action == SopStep.EndAction.MOVE_TO_PLAN and step.end_plan_id:
        target = SopPlan.objects.filter(org_id=delivery.org_id, pk=step.end_plan_id).first()
        _stop_enrollment(delivery.enrollment_id, R_MOVED, timezone.now())
        if target is not None:
            enrol_contact(plan=target, contact=contact, check_match=False)


def _finish_done(org_id: int, plan_ids: set) -> None:
    """Complete enrolments, runs and (once / recurring-ended) plans with nothing pending."""
    now = timezone.now()
    for plan in SopPlan.objects.filter(org_id=org_id, pk__in=plan_ids):
        pending = SopDelivery.objects.filter(enrollment_id=OuterRef("pk"), status__in=PENDING)
        SopEnrollment.objects.filter(plan=plan, state=SopEnrollment.State.ACTIVE).exclude(
            Exists(pending)
        ).update(state=SopEnrollment.State.COMPLETED, updated_at=now)
        run_pending = SopDelivery.objects.filter(run_id=OuterRef("pk"), status__in=PENDING)
        SopRun.objects.filter(plan=plan, status=SopRun.Status.RUNNING).exclude(
            Exists(run_pending)
        ).update(status=SopRun.Status.FINISHED, finished_at=now, updated_at=now)
        if plan.trigger == SopPlan.Trigger.ONCE and plan.status == SopPlan.Status.ACTIVE:
            if not SopRun.objects.filter(plan=plan, status=SopRun.Status.RUNNING).exists():
                SopPlan.objects.filter(pk=plan.pk, status=SopPlan.Status.ACTIVE).update(
                    status=SopPlan.Status.FINISHED, finished_at=now, updated_at=now
                )


# -- dry run, estimate, CSV ----------------------------------------------------------------


def plan_dry_run(*, org: Organization, plan_id: int, limit: int = 10) -> list[dict]:
    """The first ``limit`` messages the plan would send (targets x steps, in due order),
    rendered, without sending or writing anything. AI steps show their rendered prompt."""
    plan = SopPlan.objects.select_related("org").filter(org=org, pk=plan_id).first()
    if plan is None:
        raise NotFoundError(_("SOP plan not found."))
    limit = max(1, min(int(limit), settings.SOP_DRY_RUN_MAX))
    steps = list(selectors.plan_steps(plan=plan))
    anchor = max(plan.start_at or timezone.now(), timezone.now())
    if plan.trigger == SopPlan.Trigger.RECURRING:
        anchor = (next_fire_times(plan) or [anchor])[0]
    tz = plan.org.tzinfo
    out: list[dict] = []
    contacts = (
        selectors.plan_targets(plan=plan).select_related("account").prefetch_related("tags")[:limit]
    )
    for step in steps:
        for contact in contacts:
            if len(out) >= limit:
                break
            tag_ids = {t.pk for t in contact.tags.all()}
            if step.condition == SopStep.Condition.HAS_TAG and step.condition_tag_id not in tag_ids:
                continue
            if step.condition == SopStep.Condition.LACKS_TAG and step.condition_tag_id in tag_ids:
                continue
            variables = contact_variables(contact, contact.account)
            if step.kind == SopStep.Kind.AI:
                text = render_template(step.ai_prompt, variables)
            else:
                text = render_template(step.text, variables)
            out.append(
                {
                    "step_id": step.pk,
                    "step_order": step.order,
                    "kind": step.kind,
                    "contact_id": contact.pk,
                    "contact": contact.display_name,
                    "account_id": contact.account_id,
                    "due_at": step_due_at(step, anchor, tz),
                    "text": text,
                    "url": step.url,
                    "title": step.title,
                    "ai_prompt": step.kind == SopStep.Kind.AI,
                }
            )
    out.sort(key=lambda item: (item["due_at"], item["step_order"], item["contact_id"]))
    return out[:limit]


def plan_estimate(*, org: Organization, plan_id: int, start: datetime | None = None) -> dict:
    """Estimated finish before activation: targets x steps spread over each account's send
    limits (per minute, per day), after the last step's offset."""
    plan = SopPlan.objects.select_related("org").filter(org=org, pk=plan_id).first()
    if plan is None:
        raise NotFoundError(_("SOP plan not found."))
    steps = list(selectors.plan_steps(plan=plan))
    start = start or max(plan.start_at or timezone.now(), timezone.now())
    if plan.trigger == SopPlan.Trigger.RECURRING:
        start = (next_fire_times(plan) or [start])[0]
    tz = plan.org.tzinfo
    last_offset = max((step_due_at(s, start, tz) for s in steps), default=start) - start
    per_account = dict(
        selectors.plan_targets(plan=plan)
        .order_by()
        .values_list("account_id")
        .annotate(n=Count("id"))
        .values_list("account_id", "n")
    )
    accounts = {a.pk: a for a in plan.accounts.all()}
    targets = sum(per_account.values())
    spread = timedelta(0)
    for account_id, n in per_account.items():
        account = accounts.get(account_id)
        if account is None:
            continue
        messages = n * len(steps)
        minutes = messages / max(1, account.send_limit_per_minute)
        days = (messages - 1) // max(1, account.send_limit_per_day) if messages else 0
        spread = max(spread, timedelta(days=days, minutes=minutes))
    return {
        "targets": targets,
        "steps": len(steps),
        "messages": targets * len(steps),
        "starts_at": start,
        "send_duration_seconds": int(spread.total_seconds()),
        "estimated_finish_at": start + last_offset + spread if plan.trigger != "relative" else None,
    }


CSV_COLUMNS = [
    "id",
    "plan_id",
    "run_id",
    "occurrence",
    "step_order",
    "contact_id",
    "contact_wxid",
    "contact_name",
    "account_id",
    "due_at",
    "status",
    "reason",
    "message_id",
    "attempts",
    "queued_at",
    "sent_at",
]


def deliveries_csv(*, queryset) -> str:
    buf = io.StringIO()
    writer = csv_export.writer(buf)
    writer.writerow(CSV_COLUMNS)
    for d in queryset.select_related("contact", "step").iterator(chunk_size=2000):
        writer.writerow(
            [
                d.pk,
                d.plan_id,
                d.run_id or "",
                d.occurrence,
                d.step.order,
                d.contact_id,
                d.contact.wxid,
                d.contact.display_name,
                d.account_id,
                d.due_at.isoformat(),
                d.status,
                d.reason,
                d.message_id or "",
                d.attempts,
                d.queued_at.isoformat() if d.queued_at else "",
                d.sent_at.isoformat() if d.sent_at else "",
            ]
        )
    return buf.getvalue()


def orgs_with_due_deliveries(*, now: datetime | None = None) -> list[int]:
    """Organisations the tick must visit (cross-org by design: the beat entry point)."""
    now = now or timezone.now()
    due = SopDelivery.objects.filter(
        Q(status=Status.SCHEDULED, due_at__lte=now, plan__status=SopPlan.Status.ACTIVE)
        | Q(status=Status.PROCESSING, lease_expires_at__lt=now)
        | Q(status=Status.QUEUED)
    )
    expiring = SopPlan.objects.filter(
        status__in=[SopPlan.Status.ACTIVE, SopPlan.Status.PAUSED], stop_after__lte=now
    )
    ids = set(due.values_list("org_id", flat=True).distinct()) | set(
        expiring.values_list("org_id", flat=True)
    )
    return sorted(ids)
