"""Reads of the sop app, scoped to one organisation."""

from __future__ import annotations

from django.db.models import Count, Exists, OuterRef, Prefetch, Q, QuerySet

from apps.orgs.models import Organization
from apps.sop.models import SopDelivery, SopPlan, SopRun, SopStep
from apps.wechat_accounts.models import Contact

STATUSES = [value for value, _label in SopDelivery.Status.choices]


def plan_list(*, org: Organization | int) -> QuerySet[SopPlan]:
    return (
        SopPlan.objects.for_org(org)
        .prefetch_related(
            "accounts",
            "include_tags",
            "exclude_tags",
            Prefetch(
                "steps",
                queryset=SopStep.objects.filter(is_active=True).order_by("order", "id"),
                to_attr="prefetched_steps",
            ),
        )
        .order_by("-created_at", "-id")
    )


def plan_get(*, org: Organization | int, plan_id: int) -> SopPlan | None:
    return SopPlan.objects.for_org(org).filter(pk=plan_id).first()


def plan_steps(*, plan: SopPlan) -> QuerySet[SopStep]:
    return SopStep.objects.filter(org_id=plan.org_id, plan=plan, is_active=True).order_by(
        "order", "id"
    )


def plan_targets(*, plan: SopPlan) -> QuerySet[Contact]:
    """The contacts the plan targets now: of its accounts, not removed or blocked, matching the
    target type and the tag rules (any / all of ``include_tags``, none of ``exclude_tags``)."""
    qs = Contact.objects.filter(
        org_id=plan.org_id,
        account__in=plan.accounts.all(),
        removed_at__isnull=True,
        is_blocked=False,
    )
    target = plan.target_type
    if target == SopPlan.TargetType.FRIENDS:
        qs = qs.filter(kind=Contact.Kind.FRIEND)
    elif target == SopPlan.TargetType.GROUPS:
        qs = qs.filter(kind=Contact.Kind.GROUP)
    elif target == SopPlan.TargetType.TAG:
        qs = qs.filter(kind__in=[Contact.Kind.FRIEND, Contact.Kind.GROUP])
    elif target == SopPlan.TargetType.LIST:
        qs = qs.filter(pk__in=[int(i) for i in plan.target_contact_ids or []])
    include = list(plan.include_tags.values_list("pk", flat=True))
    if target == SopPlan.TargetType.TAG and not include:
        return qs.none()
    if include:
        through = Contact.tags.through
        if plan.tag_match == SopPlan.TagMatch.ALL:
            for tag_id in include:
                qs = qs.filter(
                    Exists(through.objects.filter(contact_id=OuterRef("pk"), tag_id=tag_id))
                )
        else:
            qs = qs.filter(
                Exists(through.objects.filter(contact_id=OuterRef("pk"), tag_id__in=include))
            )
    exclude = list(plan.exclude_tags.values_list("pk", flat=True))
    if exclude:
        through = Contact.tags.through
        qs = qs.filter(
            ~Exists(through.objects.filter(contact_id=OuterRef("pk"), tag_id__in=exclude))
        )
    return qs.order_by("id")


def contact_matches(*, plan: SopPlan, contact_id: int) -> bool:
    return plan_targets(plan=plan).filter(pk=contact_id).exists()


def _counts(qs: QuerySet[SopDelivery]) -> dict:
    rows = qs.values("status").annotate(n=Count("id")).order_by()
    counts = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[row["status"]] = row["n"]
    total = sum(counts.values())
    done = counts["sent"] + counts["failed"] + counts["skipped"]
    return {
        "total": total,
        "counts": counts,
        "done": done,
        "percent": round(100.0 * done / total, 1) if total else 0.0,
    }


def plan_progress(*, plan: SopPlan) -> dict:
    """Counts by status for the plan and each of its latest runs (at most 20)."""
    data = {"plan_id": plan.pk, "status": plan.status, **_counts(plan.deliveries.all())}
    runs = []
    for run in plan.runs.order_by("-started_at", "-id")[:20]:
        runs.append(
            {
                "run_id": run.pk,
                "occurrence": run.occurrence,
                "status": run.status,
                "started_at": run.started_at,
                **_counts(run.deliveries.all()),
            }
        )
    data["runs"] = runs
    return data


def progress_annotations(prefix: str = "deliveries") -> dict:
    """Count annotations by status (one query for a list of plans or runs)."""
    return {
        f"n_{status}": Count(prefix, filter=Q(**{f"{prefix}__status": status}))
        for status in STATUSES
    }


def delivery_list(*, org: Organization | int, plan_id: int) -> QuerySet[SopDelivery]:
    return (
        SopDelivery.objects.for_org(org)
        .filter(plan_id=plan_id)
        .select_related("contact", "account", "step")
        .order_by("due_at", "id")
    )


def run_list(*, org: Organization | int, plan_id: int) -> QuerySet[SopRun]:
    return SopRun.objects.for_org(org).filter(plan_id=plan_id)
