"""Maintenance: rebuild usage rollups from the ledger."""

from __future__ import annotations

from django.db import transaction

from apps.billing.models import (
    ZERO,
    CostLedger,
    UsageDaily,
    UsageMonthly,
)
from apps.orgs.models import Organization


# --- Maintenance ----------------------------------------------------------------------------------
@transaction.atomic
def usage_rebuild(*, org: Organization, batch_size: int = 5000) -> int:
    """Recompute the organisation's daily and monthly sums from its ledger (repair tool, and
    after a bulk import). Uses the current time zone of the organisation. Returns the number
    of daily rows written."""
    from django.db.models import Count, Sum
    from django.db.models.functions import Coalesce, TruncDate

    UsageDaily.objects.filter(org=org).delete()
    UsageMonthly.objects.filter(org=org).delete()
    grouped = (
        CostLedger.objects.filter(org=org)
        .annotate(
            day=TruncDate("created_at", tzinfo=org.tzinfo),
            uid=Coalesce("user_id", 0),
            aid=Coalesce("wechat_account_id", 0),
        )
        .values("day", "provider", "model", "kind", "uid", "aid", "currency")
        .annotate(
            n=Count("id"),
            tin=Sum("input_tokens"),
            tout=Sum("output_tokens"),
            u=Sum("units"),
            c=Sum("cost"),
        )
        .order_by()
    )
    daily: list[UsageDaily] = []
    monthly: dict[tuple, list] = {}
    written = 0
    for row in grouped.iterator(chunk_size=batch_size):
        daily.append(
            UsageDaily(
                org=org,
                date=row["day"],
                provider=row["provider"],
                model=row["model"],
                kind=row["kind"],
                user_id=row["uid"],
                wechat_account_id=row["aid"],
                currency=row["currency"],
                calls=row["n"],
                input_tokens=row["tin"] or 0,
                output_tokens=row["tout"] or 0,
                units=row["u"] or 0,
                cost=row["c"] or ZERO,
            )
        )
        key = (row["day"].strftime("%Y-%m"), row["uid"], row["aid"], row["currency"])
        acc = monthly.setdefault(key, [0, 0, ZERO])
        acc[0] += row["n"]
        acc[1] += (row["tin"] or 0) + (row["tout"] or 0)
        acc[2] += row["c"] or ZERO
        if len(daily) >= batch_size:
            UsageDaily.objects.bulk_create(daily)
            written += len(daily)
            daily = []
    UsageDaily.objects.bulk_create(daily)
    written += len(daily)
    UsageMonthly.objects.bulk_create(
        [
            UsageMonthly(
                org=org,
                period=period,
                user_id=uid,
                wechat_account_id=aid,
                currency=currency,
                calls=calls,
                tokens=tokens,
                cost=cost,
            )
            for (period, uid, aid, currency), (calls, tokens, cost) in monthly.items()
        ],
        batch_size=batch_size,
    )
    return written
