"""The SOP section of the agent workspace's customer pane: the contact's enrolments with their
step progress (registered in ``SopConfig.ready``; conversations never imports sop)."""

from __future__ import annotations

from django.db.models import Count, Q

from apps.sop.models import SopDelivery, SopEnrollment


def contact_enrolments(*, org, contact, limit: int = 10) -> list[dict] | None:
    if contact is None:
        return None
    enrolments = list(
        SopEnrollment.objects.filter(org=org, contact=contact)
        .select_related("plan")
        .annotate(
            steps_total=Count("deliveries"),
            steps_done=Count("deliveries", filter=Q(deliveries__status__in=SopDelivery.FINAL)),
        )
        .order_by("-enrolled_at", "-id")[:limit]
    )
    return [
        {
            "plan_id": e.plan_id,
            "plan_name": e.plan.name,
            "state": e.state,
            "state_label": str(e.get_state_display()),
            "steps_done": e.steps_done,
            "steps_total": e.steps_total,
            "enrolled_at": e.enrolled_at.isoformat(),
        }
        for e in enrolments
    ]


def register() -> None:
    from apps.conversations.workspace import panels

    panels.register_customer_section("sop", contact_enrolments)
