"""Demo rows: an active SOP plan for the tagged prospects, with its first step already sent (as
if it had started two days ago) and two follow-ups still scheduled, so progress shows."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from apps.core.demo import demo_seeder

from . import services
from .models import SopDelivery, SopPlan, SopStep

DEMO_PLAN_NAME = "意向客户 7 天跟进"
DEMO_STEPS = [
    (0, "您好{nickname}，感谢关注我们的地板和软装！本周展厅有新品体验活动，欢迎随时来看看～"),
    (2, "{nickname}您好，给您整理了三套热门铺装效果图，需要的话回复「效果图」我发给您。"),
    (5, "{nickname}，本月下单送踢脚线和免费量房，名额有限，有任何问题随时找我哦。"),
]


@demo_seeder
def seed_sop(*, org, owner, stdout) -> None:
    from apps.wechat_accounts.demo import demo_account
    from apps.wechat_accounts.models import Tag

    account = demo_account(org)
    tag = Tag.objects.filter(org=org, name="意向客户").first()
    if (
        account is None
        or tag is None
        or SopPlan.objects.filter(org=org, name=DEMO_PLAN_NAME).exists()
    ):
        return
    plan = services.plan_create(
        org=org,
        user=owner,
        name=DEMO_PLAN_NAME,
        description="新加的意向客户：当天问候，第 2 天发效果图，第 5 天促单。",
        target_type=SopPlan.TargetType.TAG,
        trigger=SopPlan.Trigger.ONCE,
        start_at=timezone.now(),
        quiet_hours_mode=SopPlan.QuietHoursMode.IGNORE,
        accounts=[account],
        include_tags=[tag],
        steps=[
            {"order": i, "delay_days": days, "kind": SopStep.Kind.TEXT, "text": text}
            for i, (days, text) in enumerate(DEMO_STEPS)
        ],
    )
    services.plan_activate(org=org, plan_id=plan.pk, user=owner)
    # Shift the run two days into the past: the first step went out then, the second is due
    # today, the third later. (History only: the first step's messages are not re-sent.)
    now = timezone.now()
    started = now - dt.timedelta(days=2, hours=3)
    plan.runs.update(started_at=started)
    plan.enrollments.update(enrolled_at=started)
    first, *later = list(plan.steps.order_by("order"))
    SopDelivery.objects.filter(plan=plan, step=first).update(
        status=SopDelivery.Status.SENT, due_at=started, queued_at=started, sent_at=started
    )
    for step in later:
        SopDelivery.objects.filter(plan=plan, step=step).update(
            due_at=started + dt.timedelta(days=step.delay_days, hours=6)
        )
    SopPlan.objects.filter(pk=plan.pk).update(activated_at=started)
    sent = SopDelivery.objects.filter(plan=plan, status=SopDelivery.Status.SENT).count()
    total = SopDelivery.objects.filter(plan=plan).count()
    stdout.write(f"  sop: {plan.name} ({sent}/{total} deliveries sent)\n")
