"""The tick: claim due deliveries, check them and hand them to the outbound pipeline."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations.models import Conversation, Message
from apps.core.exceptions import ApplicationError
from apps.sop import selectors
from apps.sop.models import SopDelivery, SopEnrollment, SopPlan, SopStep
from apps.sop.services._common import (
    R_BLOCKED,
    R_CONDITION,
    R_HANDOFF,
    R_NO_MATCH,
    R_REMOVED,
    R_REPLIED,
    R_STEP_REMOVED,
    R_STOP_DATE,
    R_STOP_TAG,
    Status,
    TickResult,
    _beat_delete,
    _Defer,
    _Fail,
    _push_progress,
    _Retry,
    _Skip,
    _stop_enrollment,
    quiet_end,
)
from apps.sop.services.delivery import _finish_done, _render, _send, _sync_from_pipeline
from apps.wechat_accounts.models import WeChatAccount

# -- the tick ------------------------------------------------------------------------------


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
