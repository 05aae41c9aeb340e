"""Dry run, estimate, deliveries CSV and the orgs with due work."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core import csv_export
from apps.core.exceptions import NotFoundError
from apps.core.templating import render_template
from apps.orgs.models import Organization
from apps.sop import selectors
from apps.sop.models import SopDelivery, SopPlan, SopStep
from apps.sop.services._common import Status, contact_variables, next_fire_times, step_due_at

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
