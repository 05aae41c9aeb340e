"""Reads of the billing app, always scoped to one organisation.

Usage reports read the daily/monthly aggregates (``UsageDaily``/``UsageMonthly``), never the
ledger, so they stay fast however long the ledger grows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import F, Q, QuerySet, Subquery, Sum
from django.utils import timezone

from apps.billing.models import (
    ZERO,
    Budget,
    BudgetAlert,
    CostLedger,
    ModelPrice,
    Reservation,
    UsageDaily,
    UsageMonthly,
)
from apps.billing.periods import Period, current_period
from apps.orgs.models import Organization

HUNDRED = Decimal("100")
COST_QUANTUM = Decimal("0.0000000001")


def _money(value) -> Decimal:
    """A summed cost at ledger precision (SQLite sums decimals as floats; PostgreSQL is exact)."""
    return (value or ZERO).quantize(COST_QUANTUM)


# --- Prices ---------------------------------------------------------------------------------------
def price_list(*, org: Organization) -> QuerySet[ModelPrice]:
    """Global default prices and the organisation's own prices."""
    return ModelPrice.objects.filter(Q(org__isnull=True) | Q(org=org)).select_related("org")


def price_get_in_force(
    *, org: Organization, provider: str, model: str, at: dt.datetime | None = None
) -> ModelPrice | None:
    """The price in force for a model at ``at``: the organisation's own price beats a global
    one, an exact provider beats ``*``, then the latest ``valid_from`` not after ``at`` wins."""
    at = at or timezone.now()
    provider = (provider or "").strip().lower()
    candidates = ModelPrice.objects.filter(
        Q(org__isnull=True) | Q(org_id=org.pk),
        provider__in={provider, ModelPrice.ANY_PROVIDER},
        model=(model or "").strip(),
        valid_from__lte=at,
    )
    best = None
    best_key = None
    for price in candidates:
        key = (
            price.org_id is not None,
            price.provider != ModelPrice.ANY_PROVIDER,
            price.valid_from,
        )
        if best_key is None or key > best_key:
            best, best_key = price, key
    return best


# --- Ledger and reservations ----------------------------------------------------------------------
def ledger_list(*, org: Organization) -> QuerySet[CostLedger]:
    return CostLedger.objects.for_org(org).select_related("user")


def ledger_get(*, org: Organization, request_id: str) -> CostLedger | None:
    return CostLedger.objects.for_org(org).filter(request_id=request_id).first()


def reservation_get(*, org: Organization, request_id: str) -> Reservation | None:
    return Reservation.objects.for_org(org).filter(request_id=request_id).first()


def org_ids_with_stale_reservations_all_orgs(*, now: dt.datetime | None = None) -> list[int]:
    """Organisations with held reservations past their expiry (crosses organisations on purpose:
    the periodic task fans out one task per organisation)."""
    now = now or timezone.now()
    return list(
        Reservation.objects.filter(status=Reservation.Status.HELD, expires_at__lte=now)
        .values_list("org_id", flat=True)
        .distinct()
        .order_by("org_id")
    )


# --- Budgets --------------------------------------------------------------------------------------
def budget_list(*, org: Organization) -> QuerySet[Budget]:
    return Budget.objects.for_org(org).select_related("user")


def budget_alert_list(*, org: Organization) -> QuerySet[BudgetAlert]:
    return BudgetAlert.objects.for_org(org).select_related("budget")


def budgets_applicable(
    *, org: Organization, user_id: int | None, wechat_account_id: int | None
) -> QuerySet[Budget]:
    """Active budgets a call of this user/account counts against, in id order (lock order)."""
    scope = Q(scope=Budget.Scope.ORG)
    if user_id:
        scope |= Q(scope=Budget.Scope.USER, user_id=user_id)
    if wechat_account_id:
        scope |= Q(scope=Budget.Scope.ACCOUNT, wechat_account_id=wechat_account_id)
    return Budget.objects.filter(org_id=org.pk, is_active=True).filter(scope).order_by("id")


def _scope_q(budget: Budget) -> Q | None:
    """The aggregate rows (or reservations) a budget counts: all, one user's, one account's."""
    if budget.scope == Budget.Scope.USER:
        return Q(user_id=budget.user_id)
    if budget.scope == Budget.Scope.ACCOUNT:
        return Q(wechat_account_id=budget.wechat_account_id)
    return None


def _and(first: Q, second: Q | None) -> Q:
    return first & second if second is not None else first


# Up to this many budgets are summed with one conditional aggregate each (the hot path of
# reserve/settle: 1-3 budgets); more are summed in Python from rows grouped by user, account
# and currency (the usage report with one budget per account), which compiles far faster.
CONDITIONAL_AGGREGATE_MAX_BUDGETS = 4


def _sum_for_budgets(
    queryset, budgets: list[Budget], *, money: str, tokens
) -> dict[int, tuple[Decimal, int]]:
    if len(budgets) <= CONDITIONAL_AGGREGATE_MAX_BUDGETS:
        aggregates = {}
        for budget in budgets:
            scope = _scope_q(budget)
            aggregates[f"m{budget.pk}"] = Sum(
                money, filter=_and(Q(currency=budget.currency), scope)
            )
            aggregates[f"t{budget.pk}"] = Sum(tokens, filter=scope)
        totals = queryset.aggregate(**aggregates)
        return {b.pk: (_money(totals[f"m{b.pk}"]), int(totals[f"t{b.pk}"] or 0)) for b in budgets}
    rows = list(
        queryset.values("user_id", "wechat_account_id", "currency")
        .annotate(m=Sum(money), t=Sum(tokens))
        .order_by()
    )
    result = {}
    for budget in budgets:
        spent, used = ZERO, 0
        for row in rows:
            if budget.scope == Budget.Scope.USER and row["user_id"] != budget.user_id:
                continue
            if (
                budget.scope == Budget.Scope.ACCOUNT
                and row["wechat_account_id"] != budget.wechat_account_id
            ):
                continue
            used += int(row["t"] or 0)
            if row["currency"] == budget.currency:
                spent += row["m"] or ZERO
        result[budget.pk] = (_money(spent), used)
    return result


def budgets_used(
    *, budgets: list[Budget], org: Organization, period_key: str
) -> dict[int, tuple[Decimal, int]]:
    """Money (in each budget's currency) and tokens recorded for the period, for several
    budgets of one organisation, in one query over the monthly aggregates."""
    if not budgets:
        return {}
    queryset = UsageMonthly.objects.filter(org_id=org.pk, period=period_key)
    return _sum_for_budgets(queryset, budgets, money="cost", tokens="tokens")


def budgets_held(
    *, budgets: list[Budget], org: Organization, now: dt.datetime
) -> dict[int, tuple[Decimal, int]]:
    """Money and tokens held by live reservations (an expired hold no longer counts), for
    several budgets in one query."""
    if not budgets:
        return {}
    queryset = Reservation.objects.filter(
        org_id=org.pk, status=Reservation.Status.HELD, expires_at__gt=now
    )
    tokens = F("estimated_input_tokens") + F("estimated_output_tokens")
    return _sum_for_budgets(queryset, budgets, money="estimated_cost", tokens=tokens)


def budgets_used_and_held(
    *, budgets: list[Budget], org: Organization, period_key: str, now: dt.datetime
) -> dict[int, tuple[Decimal, int]]:
    """Money and tokens used this period plus held by live reservations, per budget, read in
    ONE SQL statement (scalar subqueries) so that both parts come from the same snapshot:
    a settlement committing in between cannot be counted twice or not at all."""
    if not budgets:
        return {}
    used = UsageMonthly.objects.filter(org_id=org.pk, period=period_key).order_by()
    held = Reservation.objects.filter(
        org_id=org.pk, status=Reservation.Status.HELD, expires_at__gt=now
    ).order_by()
    held_tokens = F("estimated_input_tokens") + F("estimated_output_tokens")

    def scalar(queryset, expression):
        return Subquery(queryset.values("org_id").annotate(v=expression).values("v")[:1])

    annotations = {}
    for budget in budgets:
        scope = _scope_q(budget)
        money_filter = _and(Q(currency=budget.currency), scope)
        annotations[f"um{budget.pk}"] = scalar(used, Sum("cost", filter=money_filter))
        annotations[f"ut{budget.pk}"] = scalar(used, Sum("tokens", filter=scope))
        annotations[f"hm{budget.pk}"] = scalar(held, Sum("estimated_cost", filter=money_filter))
        annotations[f"ht{budget.pk}"] = scalar(held, Sum(held_tokens, filter=scope))
    row = Organization.objects.filter(pk=org.pk).annotate(**annotations).values(*annotations)[0]
    return {
        b.pk: (
            _money(row[f"um{b.pk}"]) + _money(row[f"hm{b.pk}"]),
            int(row[f"ut{b.pk}"] or 0) + int(row[f"ht{b.pk}"] or 0),
        )
        for b in budgets
    }


def budget_used(*, budget: Budget, period_key: str) -> tuple[Decimal, int]:
    return budgets_used(budgets=[budget], org=budget.org, period_key=period_key)[budget.pk]


def budget_held(*, budget: Budget, now: dt.datetime) -> tuple[Decimal, int]:
    return budgets_held(budgets=[budget], org=budget.org, now=now)[budget.pk]


def percent_of(used, limit) -> Decimal | None:
    if limit is None:
        return None
    limit = Decimal(limit)
    if limit <= 0:
        return HUNDRED
    return (Decimal(used) * HUNDRED / limit).quantize(Decimal("0.01"))


@dataclass
class BudgetStatus:
    """Where a budget stands in a period; ``percent`` is the higher of money and tokens."""

    budget: Budget
    period: Period
    money_used: Decimal
    tokens_used: int
    money_held: Decimal = ZERO
    tokens_held: int = 0
    money_percent: Decimal | None = None
    token_percent: Decimal | None = None
    projected_money: Decimal | None = None
    projected_tokens: int | None = None
    metric: str = "money"

    @property
    def percent(self) -> Decimal:
        values = [p for p in (self.money_percent, self.token_percent) if p is not None]
        return max(values) if values else ZERO

    @property
    def used(self) -> Decimal:
        return self.money_used if self.metric == "money" else Decimal(self.tokens_used)

    @property
    def limit(self) -> Decimal:
        value = self.budget.money_limit if self.metric == "money" else self.budget.token_limit
        return Decimal(value)

    @property
    def blocked(self) -> bool:
        return self.budget.action == Budget.Action.BLOCK and self.percent >= HUNDRED


def _status(
    *, budget: Budget, period: Period, now: dt.datetime, used: tuple, held: tuple
) -> BudgetStatus:
    money, tokens = used
    status = BudgetStatus(
        budget=budget,
        period=period,
        money_used=money,
        tokens_used=tokens,
        money_held=held[0],
        tokens_held=held[1],
        money_percent=percent_of(money, budget.money_limit),
        token_percent=percent_of(tokens, budget.token_limit),
    )
    if status.token_percent is not None and (
        status.money_percent is None or status.token_percent > status.money_percent
    ):
        status.metric = "tokens"
    fraction = Decimal(str(period.elapsed_fraction(now)))
    if fraction > 0:
        status.projected_money = (money / fraction).quantize(Decimal("0.0001"))
        status.projected_tokens = int(Decimal(tokens) / fraction)
    return status


def budget_statuses(
    *,
    budgets: list[Budget],
    org: Organization,
    at: dt.datetime | None = None,
    with_held: bool = True,
) -> list[BudgetStatus]:
    """Status of several budgets of one organisation this period (two queries in all)."""
    now = at or timezone.now()
    period = current_period(org, now)
    used = budgets_used(budgets=budgets, org=org, period_key=period.key)
    held = budgets_held(budgets=budgets, org=org, now=now) if with_held else {}
    return [
        _status(budget=b, period=period, now=now, used=used[b.pk], held=held.get(b.pk, (ZERO, 0)))
        for b in budgets
    ]


def budget_status(
    *, budget: Budget, org: Organization, at: dt.datetime | None = None, with_held: bool = True
) -> BudgetStatus:
    return budget_statuses(budgets=[budget], org=org, at=at, with_held=with_held)[0]


def budget_status_list(*, org: Organization, at: dt.datetime | None = None) -> list[BudgetStatus]:
    budgets = list(budget_list(org=org).filter(is_active=True).order_by("scope", "id"))
    return budget_statuses(budgets=budgets, org=org, at=at)


# --- Usage reports --------------------------------------------------------------------------------
@dataclass
class UsageReport:
    start: dt.date
    end: dt.date  # inclusive
    totals: list[dict] = field(default_factory=list)
    by_day: list[dict] = field(default_factory=list)
    by_model: list[dict] = field(default_factory=list)
    by_user: list[dict] = field(default_factory=list)
    by_account: list[dict] = field(default_factory=list)


_SUMS = {
    "calls": Sum("calls"),
    "input_tokens": Sum("input_tokens"),
    "output_tokens": Sum("output_tokens"),
    "units": Sum("units"),
    "cost": Sum("cost"),
}


def _rows(queryset, dims: list[str], order: list[str]) -> list[dict]:
    rows = []
    for row in queryset.values(*dims, "currency").annotate(**_SUMS).order_by(*order):
        row["cost"] = _money(row["cost"])
        for key in ("calls", "input_tokens", "output_tokens", "units"):
            row[key] = int(row[key] or 0)
        rows.append(row)
    return rows


def usage_daily_list(
    *,
    org: Organization,
    start: dt.date,
    end: dt.date,
    user_id: int | None = None,
    wechat_account_id: int | None = None,
    kind: str | None = None,
) -> QuerySet[UsageDaily]:
    """Daily aggregates of ``[start, end]`` (organisation-local dates, inclusive)."""
    queryset = UsageDaily.objects.for_org(org).filter(date__gte=start, date__lte=end)
    if user_id:
        queryset = queryset.filter(user_id=user_id)
    if wechat_account_id:
        queryset = queryset.filter(wechat_account_id=wechat_account_id)
    if kind:
        queryset = queryset.filter(kind=kind)
    return queryset


def usage_report(
    *,
    org: Organization,
    start: dt.date,
    end: dt.date,
    user_id: int | None = None,
    wechat_account_id: int | None = None,
    kind: str | None = None,
) -> UsageReport:
    """Totals and series by day, model, user and account for ``[start, end]``."""
    base = usage_daily_list(
        org=org,
        start=start,
        end=end,
        user_id=user_id,
        wechat_account_id=wechat_account_id,
        kind=kind,
    )
    report = UsageReport(start=start, end=end)
    report.totals = _rows(base, [], ["currency"])
    report.by_day = _rows(base, ["date"], ["date", "currency"])
    report.by_model = _rows(base, ["provider", "model", "kind"], ["-cost", "provider", "model"])
    report.by_user = _rows(base, ["user_id"], ["-cost", "user_id"])
    report.by_account = _rows(
        base.exclude(wechat_account_id=0), ["wechat_account_id"], ["-cost", "wechat_account_id"]
    )
    _attach_user_labels(report.by_user)
    for row in report.by_user:
        row["user_id"] = row["user_id"] or None
    return report


def _attach_user_labels(rows: list[dict]) -> None:
    from apps.accounts.models import User

    ids = {row["user_id"] for row in rows if row["user_id"]}
    labels = {
        user.id: (user.email, user.name)
        for user in User.objects.filter(id__in=ids).only("id", "email", "name")
    }
    for row in rows:
        email, name = labels.get(row["user_id"], ("", ""))
        row["user_email"] = email
        row["user_name"] = name


def daily_cost_series(
    *, org: Organization, period: Period, currency: str
) -> list[tuple[dt.date, Decimal]]:
    """Cost per local day of a period in one currency, every day present (0 when idle)."""
    sums: dict[dt.date, Decimal] = defaultdict(lambda: ZERO)
    rows = (
        UsageDaily.objects.for_org(org)
        .filter(date__gte=period.start_date, date__lt=period.end_date, currency=currency)
        .values("date")
        .annotate(cost=Sum("cost"))
    )
    for row in rows:
        sums[row["date"]] = _money(row["cost"])
    days = (period.end_date - period.start_date).days
    return [
        (period.start_date + dt.timedelta(days=i), sums[period.start_date + dt.timedelta(days=i)])
        for i in range(days)
    ]
