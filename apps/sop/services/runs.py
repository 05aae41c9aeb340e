"""Runs and enrolment: expanding a plan into deliveries; the relative triggers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.sop import selectors
from apps.sop.models import SopDelivery, SopEnrollment, SopPlan, SopRun, SopStep
from apps.sop.services._common import ENROL, ONCE, R_MOVED, _push_progress, step_due_at
from apps.wechat_accounts.models import Contact

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
