"""Plans and steps: create, update, reschedule, delete."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError, ConflictError
from apps.orgs.models import Organization
from apps.sop import selectors
from apps.sop.models import SopDelivery, SopEnrollment, SopPlan, SopStep
from apps.sop.services._common import (
    R_STEP_REMOVED,
    Status,
    _app_error,
    _beat_delete,
    _beat_sync,
    _check_same_org,
    _plan_for_update,
    step_due_at,
)
from apps.sop.services.runs import _create_deliveries
from apps.wechat_accounts.models import Tag, WeChatAccount

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
    "media_file",
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
