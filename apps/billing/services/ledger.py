"""Writing the ledger: one metered call's row plus its daily and monthly sums, and the budget
thresholds it may cross (shared by ``settle`` and ``record_usage``)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from decimal import Decimal

from django.db import connection, transaction

from apps.billing.config_cache import MeteringConfig
from apps.billing.models import Budget, CostLedger, Reservation, UsageDaily, UsageMonthly
from apps.billing.periods import local_date
from apps.billing.services._sql import ledger_write
from apps.billing.services.prices import _normalise_currency, _price_and_cost
from apps.billing.services.thresholds import _evaluate_thresholds
from apps.orgs.models import Organization

logger = logging.getLogger(__name__)


def _savepoint_if_nested():
    """A savepoint inside a caller's transaction (a failed statement must not break it);
    nothing otherwise (a single statement commits on its own)."""
    return transaction.atomic() if connection.in_atomic_block else contextlib.nullcontext()


def _write_ledger(
    *,
    org: Organization,
    config: MeteringConfig,
    now: dt.datetime,
    reservation: Reservation | None,
    request_id: str,
    user_id: int | None,
    wechat_account_id: int | None,
    conversation_id: int | None,
    sop_run_id: int | None,
    provider: str,
    model: str,
    kind: str,
    input_tokens: int,
    output_tokens: int,
    units: int,
    provider_cost: Decimal | None,
    provider_currency: str,
    usage_source: str,
    claim: tuple[str, list] | None = None,
    also_insert: tuple = (),
) -> tuple[bool, CostLedger | None]:
    """Insert the ledger row, add it to the daily and monthly sums, and check thresholds. None
    (and nothing written but ``also_insert``) when the request id is recorded, or ``claim``
    changed no row."""
    price, cost, currency = _price_and_cost(
        org=org,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        units=units,
        at=now,
        provider_cost=provider_cost,
        provider_currency=provider_currency,
        config=config,
    )
    entry = CostLedger(
        org=org,
        request_id=request_id,
        reservation=reservation,
        user_id=user_id,
        wechat_account_id=wechat_account_id,
        conversation_id=conversation_id,
        sop_run_id=sop_run_id,
        provider=provider,
        model=model,
        kind=kind,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        units=units,
        cost=cost,
        currency=currency,
        provider_cost=None if provider_cost is None else Decimal(provider_cost),
        provider_currency=_normalise_currency(provider_currency),
        usage_source=usage_source,
        price=price,
        created_at=now,
    )
    # Hot path: related rows are ones we just read, and the unique request id is enforced by
    # the database (the conflict clause; the public functions catch other races).
    entry.full_clean(
        exclude=["org", "user", "reservation", "price"],
        validate_unique=False,
        validate_constraints=False,
    )
    claimed, pk = ledger_write(
        ledger_model=CostLedger,
        ledger={name: getattr(entry, name) for name in _LEDGER_COLUMNS},
        **_usage_rows(entry=entry, org=org),
        claim=claim,
        also_insert=also_insert,
    )
    if not claimed or pk is None:
        return claimed, None
    entry.pk = pk
    entry._state.adding = False
    entry._state.db = connection.alias
    budgets = config.budgets_applicable(user_id=user_id, wechat_account_id=wechat_account_id)
    if budgets:
        _thresholds_check(org=org, budgets=budgets, now=now)
    return True, entry


def _thresholds_check(*, org: Organization, budgets: list[Budget], now: dt.datetime) -> None:
    """Record the thresholds the usage has reached, without taking the budget locks.

    Checked twice: in the transaction (its own write included, so a single writer records the
    alert with its ledger row), and again after commit. Two settlements committing at once may
    each miss the other's uncommitted write in the first check, but whichever commits last sees
    both in the second. The alert is unique per budget, period and threshold, so seeing a
    crossing twice records it once. Locking the budgets instead would serialise every
    settlement of an organisation behind its budget row until commit (issue 19)."""
    _evaluate_thresholds(org=org, budgets=budgets, now=now)
    if not connection.in_atomic_block:
        return  # The write committed on its own: this check already saw it committed.

    def after_commit() -> None:
        try:
            with transaction.atomic():
                _evaluate_thresholds(org=org, budgets=budgets, now=now)
        except Exception:  # noqa: BLE001 - the usage is recorded; the next call re-checks
            logger.exception("billing: threshold check after commit failed (org %s)", org.pk)

    transaction.on_commit(after_commit)


_LEDGER_COLUMNS = (
    "org_id",
    "request_id",
    "reservation_id",
    "user_id",
    "wechat_account_id",
    "conversation_id",
    "sop_run_id",
    "provider",
    "model",
    "kind",
    "input_tokens",
    "output_tokens",
    "units",
    "cost",
    "currency",
    "provider_cost",
    "provider_currency",
    "usage_source",
    "price_id",
    "created_at",
)


def _usage_rows(*, entry: CostLedger, org: Organization) -> dict:
    """The daily and monthly aggregate rows the entry adds to: ``(model, key, deltas)``."""
    day = local_date(org, entry.created_at)
    user_id = entry.user_id or 0
    account_id = entry.wechat_account_id or 0
    daily_key = {
        "org_id": org.pk,
        "date": day,
        "provider": entry.provider,
        "model": entry.model,
        "kind": entry.kind,
        "user_id": user_id,
        "wechat_account_id": account_id,
        "currency": entry.currency,
    }
    daily = {
        "calls": 1,
        "input_tokens": entry.input_tokens,
        "output_tokens": entry.output_tokens,
        "units": entry.units,
        "cost": entry.cost,
    }
    monthly_key = {
        "org_id": org.pk,
        "period": day.strftime("%Y-%m"),
        "user_id": user_id,
        "wechat_account_id": account_id,
        "currency": entry.currency,
    }
    monthly = {"calls": 1, "tokens": entry.total_tokens, "cost": entry.cost}
    return {
        "daily": (UsageDaily, daily_key, daily),
        "monthly": (UsageMonthly, monthly_key, monthly),
    }
