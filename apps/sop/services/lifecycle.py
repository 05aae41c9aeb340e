"""A plan's life cycle: activate, pause, resume, cancel."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError, ConflictError
from apps.orgs.models import Organization
from apps.sop import selectors
from apps.sop.models import SopDelivery, SopEnrollment, SopPlan, SopRun
from apps.sop.services._common import (
    ENROL,
    ONCE,
    R_CANCELLED,
    Status,
    _app_error,
    _beat_delete,
    _beat_sync,
    _plan_for_update,
    _push_progress,
)
from apps.sop.services.runs import _enrol_many, _run_create

# -- life cycle ----------------------------------------------------------------------------


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
