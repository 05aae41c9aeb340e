"""Budget thresholds: warn once per period, and alert on a refusal."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import IntegrityError, transaction

from apps.billing import selectors
from apps.billing.models import (
    Budget,
    BudgetAlert,
)
from apps.billing.services._common import BudgetExceeded
from apps.core import events
from apps.core.realtime import group_for_monitor, push_on_commit
from apps.orgs.models import Organization


# --- Thresholds -----------------------------------------------------------------------------------
def _evaluate_thresholds(*, org: Organization, budgets: list[Budget], now: dt.datetime) -> None:
    """Record (once per period) every threshold the ledger usage has reached. Held
    reservations do not count: only money actually spent crosses a threshold."""
    statuses = selectors.budget_statuses(budgets=budgets, org=org, at=now, with_held=False)
    crossed = {s.budget.pk: [t for t in s.budget.thresholds if s.percent >= t] for s in statuses}
    if not any(crossed.values()):
        return
    period_key = statuses[0].period.key
    fired = set(
        BudgetAlert.objects.filter(
            budget_id__in=[pk for pk, ts in crossed.items() if ts], period=period_key
        ).values_list("budget_id", "threshold")
    )
    for status in statuses:
        for threshold in crossed[status.budget.pk]:
            if (status.budget.pk, threshold) not in fired:
                _alert_once(
                    org=org,
                    budget=status.budget,
                    period_key=period_key,
                    threshold=threshold,
                    metric=status.metric,
                    used=status.used,
                    limit=status.limit,
                    percent=status.percent,
                )


def _alert_once(
    *,
    org: Organization,
    budget: Budget,
    period_key: str,
    threshold: int,
    metric: str,
    used: Decimal,
    limit: Decimal,
    percent: Decimal,
    blocked: bool = False,
) -> BudgetAlert | None:
    """Record the threshold for the period; if it is new, announce it after commit."""
    alert = BudgetAlert(
        org=org,
        budget=budget,
        period=period_key,
        threshold=threshold,
        metric=metric,
        used=Decimal(used),
        limit=Decimal(limit),
        percent=Decimal(percent).quantize(Decimal("0.01")),
        blocked=blocked,
    )
    alert.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            alert.save()
    except IntegrityError:
        return None  # Already fired this period.
    payload = {
        "org_id": org.pk,
        "budget_id": budget.pk,
        "threshold": threshold,
        "period": period_key,
        "used": alert.used,
        "limit": alert.limit,
    }
    extra = {
        "metric": metric,
        "percent": alert.percent,
        "currency": budget.currency,
        "scope": budget.scope,
        "action": budget.action,
        "blocked": blocked,
        "alert_id": alert.pk,
    }
    transaction.on_commit(
        lambda: events.budget_threshold_crossed.send(sender=Budget, **payload, **extra)
    )
    push_on_commit(
        "stats_update",
        {"source": "billing", "event": "budget_threshold_crossed", **payload, **extra},
        groups=[group_for_monitor(org.pk)],
    )
    return alert


@transaction.atomic
def _alert_refusal(*, org: Organization, exc: BudgetExceeded) -> None:
    """A refused call means the budget is exhausted: raise its 100 % alert once per period."""
    budget = exc.budget
    limit = Decimal(exc.limit)
    used = Decimal(exc.used)
    percent = selectors.percent_of(used, limit) or Decimal(100)
    _alert_once(
        org=org,
        budget=budget,
        period_key=exc.period,
        threshold=Budget.HARD_THRESHOLD,
        metric=exc.metric,
        used=used,
        limit=limit,
        percent=percent,
        blocked=True,
    )
