"""Reads of the billing app, always scoped to one organisation.

Usage reports read the daily/monthly aggregates (``UsageDaily``/``UsageMonthly``), never the
ledger, so they stay fast however long the ledger grows.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from apps.billing.models import (
    ZERO,
    Budget,
    BudgetAlert,
    CostLedger,
    ModelPrice,
    Reservation,
    UsageDaily,
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


@dataclass(frozen=True)
class BudgetSums:
    """Money (in the budget's currency) and tokens of a budget: recorded this period, and held
    by live reservations."""

    money_used: Decimal = ZERO
    tokens_used: int = 0
    money_held: Decimal = ZERO
    tokens_held: int = 0


def _scope_sql(budget: Budget) -> tuple[str, list]:
    if budget.scope == Budget.Scope.USER:
        return "user_id = %s", [budget.user_id]
    if budget.scope == Budget.Scope.ACCOUNT:
        return "wechat_account_id = %s", [budget.wechat_account_id]
    return "1 = 1", []


def budget_sums(
    *,
    budgets: list[Budget],
    org: Organization,
    period_key: str,
    held_at: dt.datetime | None = None,
) -> dict[int, BudgetSums]:
    """What each budget has used this period (monthly aggregates) and, when ``held_at`` is
    given, what live reservations hold at that moment, in ONE SQL statement.

    One statement means one snapshot: a settlement committing meanwhile moves its cost from
    "held" to "used" atomically, so ``reserve`` counts it exactly once without making
    settlements wait for its lock. Hand-written SQL because this is the hot path of
    ``reserve`` and ``settle``: compiling the equivalent ORM expressions costs more CPU than
    running the query. Works on PostgreSQL and SQLite (aggregate FILTER clauses).
    """
    if not budgets:
        return {}
    # Table names are the models' default db_table (billing_usagemonthly, billing_reservation).
    columns, params = [], []
    for budget in budgets:
        scope, scope_params = _scope_sql(budget)
        for source in ("u", "h"):
            columns.append(
                f"SUM(cost) FILTER (WHERE src = '{source}' AND currency = %s AND {scope})"
            )
            params += [budget.currency, *scope_params]
            columns.append(f"SUM(tokens) FILTER (WHERE src = '{source}' AND {scope})")
            params += scope_params
    parts = [
        "SELECT 'u' AS src, user_id, wechat_account_id, currency, cost, tokens "
        "FROM billing_usagemonthly WHERE org_id = %s AND period = %s"
    ]
    params += [org.pk, period_key]
    if held_at is not None:
        parts.append(
            "SELECT 'h' AS src, user_id, wechat_account_id, currency, estimated_cost AS cost, "
            "estimated_input_tokens + estimated_output_tokens AS tokens "
            "FROM billing_reservation WHERE org_id = %s AND status = %s AND expires_at > %s"
        )
        params += [org.pk, Reservation.Status.HELD, held_at]
    source_sql = " UNION ALL ".join(parts)
    sql = f"SELECT {', '.join(columns)} FROM ({source_sql}) AS sums"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()

    def money(value) -> Decimal:
        return _money(None if value is None else Decimal(str(value)))

    return {
        budget.pk: BudgetSums(
            money_used=money(row[4 * i]),
            tokens_used=int(row[4 * i + 1] or 0),
            money_held=money(row[4 * i + 2]),
            tokens_held=int(row[4 * i + 3] or 0),
        )
        for i, budget in enumerate(budgets)
    }


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


def _status(*, budget: Budget, period: Period, now: dt.datetime, sums: BudgetSums) -> BudgetStatus:
    money, tokens = sums.money_used, sums.tokens_used
    status = BudgetStatus(
        budget=budget,
        period=period,
        money_used=money,
        tokens_used=tokens,
        money_held=sums.money_held,
        tokens_held=sums.tokens_held,
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
    """Status of several budgets of one organisation this period (one query in all)."""
    now = at or timezone.now()
    period = current_period(org, now)
    sums = budget_sums(
        budgets=budgets, org=org, period_key=period.key, held_at=now if with_held else None
    )
    return [_status(budget=b, period=period, now=now, sums=sums[b.pk]) for b in budgets]


def budget_status(
    *, budget: Budget, org: Organization, at: dt.datetime | None = None, with_held: bool = True
) -> BudgetStatus:
    return budget_statuses(budgets=[budget], org=org, at=at, with_held=with_held)[0]


def budget_status_list(*, org: Organization, at: dt.datetime | None = None) -> list[BudgetStatus]:
    order = {Budget.Scope.ORG: 0, Budget.Scope.USER: 1, Budget.Scope.ACCOUNT: 2}
    budgets = sorted(
        budget_list(org=org).filter(is_active=True), key=lambda b: (order[b.scope], b.id)
    )
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
