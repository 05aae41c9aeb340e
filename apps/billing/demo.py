"""Demo rows: a monthly organisation budget and about a hundred AI and platform calls spread
over the last days of this month, so the usage report, the chart and the budget gauge show
something real (ledger rows through ``record_usage``; the daily aggregates rebuilt after the
history's dates are set)."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from django.utils import timezone

from apps.core.demo import demo_seeder

from . import services
from .models import Budget, CostLedger, Kind

DEMO_BUDGET_NAME = "组织月度预算"
DEMO_REQUEST_PREFIX = "demo-usage-"


@demo_seeder
def seed_billing(*, org, owner, stdout) -> None:
    if not Budget.objects.filter(org=org, name=DEMO_BUDGET_NAME).exists():
        services.budget_create(
            org=org,
            name=DEMO_BUDGET_NAME,
            scope=Budget.Scope.ORG,
            money_limit=Decimal("10.00"),
            token_limit=2_000_000,
        )
    if CostLedger.objects.filter(org=org, request_id__startswith=DEMO_REQUEST_PREFIX).exists():
        return
    rng = random.Random(20260)
    now = timezone.now()
    # Days of this month so far (in the organisation's time zone), at most the last ten.
    local_today = now.astimezone(org.tzinfo).date()
    days = min(local_today.day, 6)  # under a week: see apps/monitoring/demo.py
    stamps: dict[str, dt.datetime] = {}
    for i in range(96):
        day = rng.randrange(days)
        stamp = now - dt.timedelta(days=day, minutes=rng.randrange(61, 600))
        if stamp.astimezone(org.tzinfo).month != local_today.month:
            stamp = now - dt.timedelta(minutes=rng.randrange(61, 120))
        is_ai = i % 3 != 2
        request_id = f"{DEMO_REQUEST_PREFIX}{i:03d}"
        services.record_usage(
            org=org,
            provider="openai" if is_ai else "gewe",
            model="qwen-plus" if is_ai else "send_text",
            request_id=request_id,
            kind=Kind.CHAT if is_ai else Kind.PLATFORM,
            units=0 if is_ai else 1,
            input_tokens=rng.randrange(1800, 5200) if is_ai else 0,
            output_tokens=rng.randrange(120, 600) if is_ai else 0,
            user=owner if i % 4 == 0 else None,
        )
        stamps[request_id] = stamp
    for request_id, stamp in stamps.items():
        CostLedger.objects.filter(org=org, request_id=request_id).update(created_at=stamp)
    services.usage_rebuild(org=org)
    total = sum(
        CostLedger.objects.filter(org=org, request_id__startswith=DEMO_REQUEST_PREFIX).values_list(
            "cost", flat=True
        )
    )
    stdout.write(f"  billing: budget {DEMO_BUDGET_NAME}, {len(stamps)} calls, ¥{total:.2f}\n")
