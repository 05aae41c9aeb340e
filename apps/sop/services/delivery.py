"""Rendering a delivery (template or AI text), sending it, and syncing pipeline outcomes back."""

from __future__ import annotations

from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.conversations.models import Message
from apps.conversations.outbound import send
from apps.core.exceptions import ApplicationError
from apps.core.templating import render_template
from apps.sop.models import SopDelivery, SopEnrollment, SopPlan, SopRun, SopStep
from apps.sop.services._common import (
    PENDING,
    R_MOVED,
    Status,
    TickResult,
    _Fail,
    _Retry,
    _stop_enrollment,
    contact_variables,
)
from apps.sop.services.runs import enrol_contact


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
        # media: an uploaded file goes out as a signed URL made at send time.
        **({"media_file": step.media_file} if step.media_file_id else {}),
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
