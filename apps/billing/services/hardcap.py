"""The hard cap: whether a call's estimate fits every blocking budget it counts against.

Two ways, one rule (usage this period + live holds + the estimate within each limit, checked
under the budget rows' locks, taken in id order):

- PostgreSQL, a new request id: ``insert_checked``, ONE statement that calls the function
  ``billing_reserve_check`` (migration ``0003_budgetfn_reserve_check``) and inserts the
  reservation only if it returns NULL. Autocommitted when the caller has no transaction, so the
  locks last only while the server runs the statement, with no client round trip inside the
  locked window (issue 19: 8 workers on 2 cores queued about 5 ms per call on the organisation
  budget's lock while each holder waited to be scheduled for its next round trip).
- Otherwise (SQLite; a known request id being re-held): ``check_hold`` in the caller's
  transaction: lock, read the sums in one statement (``selectors.budget_sums``), raise.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from django.db import connection
from django.utils.translation import gettext as _

from apps.billing import selectors
from apps.billing.config_cache import MeteringConfig
from apps.billing.models import Budget, Reservation
from apps.billing.periods import current_period
from apps.billing.services._common import BudgetExceeded
from apps.billing.services._sql import insert_unless_refused
from apps.billing.services.budgets import _lock_budgets
from apps.billing.services.ledger import _savepoint_if_nested
from apps.orgs.models import Organization

# The function's arguments: organisation, user, WeChat account, period key, the moment of the
# call, the estimate's cost, currency and tokens (typed: any of them may be NULL).
_CHECK_CALL = (
    "billing_reserve_check(%s::bigint, %s::bigint, %s::bigint, %s::text, %s::timestamptz, "
    "%s::numeric, %s::text, %s::bigint)"
)

KNOWN = object()  # ``insert_checked``: the request id exists, nothing written.


def insert_checked(*, org: Organization, reservation: Reservation, values: dict):
    """PostgreSQL: insert the unsaved ``reservation`` (its column ``values``) if its estimate
    fits every active blocking budget of the call, in one statement; return the new id.

    The function locks those budgets (``FOR UPDATE``, id order), then, in a new command and so
    with a fresh snapshot (a VOLATILE PL/pgSQL function takes one per command under READ
    COMMITTED), sums this period's usage and the live holds and returns NULL if the estimate
    fits, else what refused (budget id, metric, used, limit). A plain statement could not do
    this: its one snapshot predates the lock wait and would miss the hold the previous lock
    holder committed. The function reads the limits of the rows it locked, so the cached
    budgets only decided that a blocking budget may apply.

    Returns ``KNOWN`` when the request id exists (nothing written, also after a refusal: the
    caller re-checks it as a re-hold); raises ``BudgetExceeded`` on a refusal.
    """
    now = values["created_at"]
    period_key = current_period(org, now).key
    check = [
        org.pk,
        reservation.user_id,
        reservation.wechat_account_id,
        period_key,
        now,
        reservation.estimated_cost,
        reservation.currency,
        reservation.estimated_tokens,
    ]
    with _savepoint_if_nested():
        refused, pk = insert_unless_refused(
            Reservation,
            values,
            conflict=("org_id", "request_id"),
            guard=_CHECK_CALL,
            guard_params=check,
        )
    if refused is None:
        return KNOWN if pk is None else pk
    if selectors.reservation_get(org=org, request_id=reservation.request_id) is not None:
        return KNOWN
    if isinstance(refused, str):  # Django's psycopg setup leaves jsonb undecoded.
        refused = json.loads(refused)
    budget = Budget.objects.filter(org=org, id=refused["budget_id"]).first()
    if budget is None:  # Deleted since it refused: check again without it.
        return insert_checked(org=org, reservation=reservation, values=values)
    money = refused["metric"] == "money"
    raise _exceeded(
        budget=budget,
        metric=refused["metric"],
        used=Decimal(refused["used"]) if money else int(refused["used"]),
        limit=Decimal(refused["limit"]) if money else int(refused["limit"]),
        requested=reservation.estimated_cost if money else reservation.estimated_tokens,
        period_key=period_key,
    )


def check_hold(
    *, org, config: MeteringConfig, now, reservation: Reservation, included: bool = False
) -> None:
    """Lock the budgets the call counts against and raise ``BudgetExceeded`` if its estimate
    does not fit (in the caller's transaction; the locks last until it commits). ``included``:
    the reservation is already inserted in this transaction."""
    budgets = _lock_cached_budgets(org=org, config=config, reservation=reservation)
    if budgets is None:
        budgets = _lock_budgets(
            org=org, user_id=reservation.user_id, wechat_account_id=reservation.wechat_account_id
        )
    blocking = [b for b in budgets if b.action == Budget.Action.BLOCK]
    if blocking:
        check_fits(
            org=org,
            budgets=blocking,
            now=now,
            cost=reservation.estimated_cost,
            currency=reservation.currency,
            tokens=reservation.estimated_tokens,
            included=included,
        )


_LOCK_SQL = (
    "SELECT id, money_limit, token_limit, currency, action FROM billing_budget "
    "WHERE org_id = %s AND is_active AND id = ANY(%s) ORDER BY id FOR UPDATE"
)


def _lock_cached_budgets(
    *, org, config: MeteringConfig, reservation: Reservation
) -> list[Budget] | None:
    """Lock the cached budgets the call counts against (PostgreSQL, one hand-written statement
    instead of compiling the ORM query) and return them if their limits are unchanged; None
    when the caller must lock and read them through the ORM (SQLite, or they changed)."""
    if connection.vendor != "postgresql":
        return None
    cached = config.budgets_applicable(
        user_id=reservation.user_id, wechat_account_id=reservation.wechat_account_id
    )
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_SQL, [org.pk, [b.pk for b in cached]])
        rows = cursor.fetchall()
    expected = [(b.pk, b.money_limit, b.token_limit, b.currency, b.action) for b in cached]
    return cached if [tuple(row) for row in rows] == expected else None


def check_fits(
    *,
    org: Organization,
    budgets: list[Budget],
    now: dt.datetime,
    cost: Decimal,
    currency: str,
    tokens: int,
    included: bool = False,
) -> None:
    """Raise ``BudgetExceeded`` for the first budget that this call would take over its limit
    (ledger this month + live holds + this estimate). The budgets are locked by the caller.
    ``included``: the call's own reservation is already inserted (uncommitted), so the live
    holds read count it."""
    period_key = current_period(org, now).key
    # One statement, hence one snapshot (see selectors.budget_sums).
    sums = selectors.budget_sums(budgets=budgets, org=org, period_key=period_key, held_at=now)
    for budget in budgets:
        used_money = sums[budget.pk].money_used + sums[budget.pk].money_held
        used_tokens = sums[budget.pk].tokens_used + sums[budget.pk].tokens_held
        if included:
            used_tokens -= tokens
            if currency == budget.currency:
                used_money -= cost
        if (
            budget.money_limit is not None
            and currency == budget.currency
            and used_money + cost > budget.money_limit
        ):
            raise _exceeded(
                budget=budget,
                metric="money",
                used=used_money,
                limit=budget.money_limit,
                requested=cost,
                period_key=period_key,
            )
        if budget.token_limit is not None and used_tokens + tokens > budget.token_limit:
            raise _exceeded(
                budget=budget,
                metric="tokens",
                used=used_tokens,
                limit=budget.token_limit,
                requested=tokens,
                period_key=period_key,
            )


def _exceeded(*, budget: Budget, metric: str, used, limit, requested, period_key: str):
    """The ``BudgetExceeded`` of a budget that refused a call."""
    if metric == "money":
        message = _("The monthly budget “%(budget)s” would be exceeded.") % {"budget": budget}
    else:
        message = _("The monthly token quota “%(budget)s” would be exceeded.") % {"budget": budget}
    return BudgetExceeded(
        message,
        budget=budget,
        metric=metric,
        used=used,
        limit=limit,
        requested=requested,
        period=period_key,
    )
