"""The hard cap of ``reserve`` (``services.hardcap``): on PostgreSQL one statement calling
``billing_reserve_check``, elsewhere lock + sums + insert in one transaction. The behaviour is
the same on both; the PostgreSQL-only tests cover what only the function does."""

from decimal import Decimal

import pytest
from django.db import connection, transaction

from apps.billing import services
from apps.billing.models import Budget, BudgetAlert, Kind, Reservation
from apps.billing.periods import current_period
from apps.billing.services._common import BudgetExceeded
from tests.billing.factories import BudgetFactory, ModelPriceFactory
from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db


@pytest.fixture
def price(db):
    return ModelPriceFactory(model="m-cap")  # 60 in + 40 out = 0.00144 CNY


def _reserve(org, request_id, **kwargs):
    return services.reserve(
        org=org,
        provider="openai_compat",
        model="m-cap",
        kind=Kind.CHAT,
        estimated_input_tokens=kwargs.pop("tokens_in", 60),
        estimated_output_tokens=kwargs.pop("tokens_out", 40),
        request_id=request_id,
        **kwargs,
    )


def test_a_call_that_fits_is_held(org, price):
    BudgetFactory(org=org, money_limit=Decimal("0.00288"), token_limit=200)
    first = _reserve(org, "fit-1")
    second = _reserve(org, "fit-2")  # exactly at both limits
    assert first.pk and second.pk and first.pk != second.pk
    stored = Reservation.objects.get(org=org, request_id="fit-2")
    assert stored.status == Reservation.Status.HELD
    assert stored.estimated_cost == Decimal("0.00144")
    assert second.status == Reservation.Status.HELD


def test_a_refusal_names_the_budget_and_amounts_and_alerts_once(
    org, price, django_capture_on_commit_callbacks
):
    budget = BudgetFactory(org=org, money_limit=Decimal("0.00200"))
    _reserve(org, "held")  # 0.00144 held
    for attempt in range(2):
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(BudgetExceeded) as excinfo,
        ):
            _reserve(org, f"refused-{attempt}")
        exc = excinfo.value
        assert exc.budget == budget
        assert exc.metric == "money"
        assert exc.used == Decimal("0.00144")
        assert exc.limit == Decimal("0.00200")
        assert exc.requested == Decimal("0.00144")
        assert exc.period == current_period(org).key
        assert "would be exceeded" in str(exc)
    assert not Reservation.objects.filter(org=org, request_id__startswith="refused").exists()
    alert = BudgetAlert.objects.get(org=org, budget=budget)  # once for both refusals
    assert alert.threshold == Budget.HARD_THRESHOLD and alert.blocked
    assert alert.used == Decimal("0.00144") and alert.limit == Decimal("0.00200")


def test_a_token_refusal_reports_tokens(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=150)
    _reserve(org, "t1")
    with pytest.raises(BudgetExceeded) as excinfo:
        _reserve(org, "t2")
    exc = excinfo.value
    assert (exc.metric, exc.used, exc.limit, exc.requested) == ("tokens", 100, 150, 100)


def test_a_retried_request_id_returns_its_reservation_even_when_full(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=100)
    first = _reserve(org, "retry")
    again = _reserve(org, "retry")  # the budget is full now, but this call was admitted
    assert again.pk == first.pk
    assert Reservation.objects.filter(org=org, request_id="retry").count() == 1


def test_a_released_request_id_is_checked_and_held_again(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=100)
    first = _reserve(org, "again")
    services.release(reservation=first)
    other = _reserve(org, "other")  # takes the whole budget
    with pytest.raises(BudgetExceeded):
        _reserve(org, "again")
    assert Reservation.objects.get(pk=first.pk).status == Reservation.Status.RELEASED
    services.release(reservation=other)
    assert _reserve(org, "again").pk == first.pk
    assert Reservation.objects.get(pk=first.pk).status == Reservation.Status.HELD


def test_two_budgets_one_refusing_writes_nothing(org, price):
    from tests.wechat_accounts.factories import WeChatAccountFactory

    account = WeChatAccountFactory(org=org)
    BudgetFactory(org=org, money_limit=Decimal("100"))
    narrow = services.budget_create(
        org=org, scope=Budget.Scope.ACCOUNT, wechat_account_id=account.id, token_limit=150
    )
    _reserve(org, "a1", wechat_account_id=account.id)
    with pytest.raises(BudgetExceeded) as excinfo:
        _reserve(org, "a2", wechat_account_id=account.id)
    assert excinfo.value.budget == narrow and excinfo.value.metric == "tokens"
    assert list(Reservation.objects.filter(org=org).values_list("request_id", flat=True)) == ["a1"]
    assert _reserve(org, "elsewhere").status == Reservation.Status.HELD  # org budget fits


def test_another_orgs_budget_and_holds_never_count(org, other_org, price):
    theirs = BudgetFactory(org=other_org, money_limit=None, token_limit=100)
    BudgetFactory(org=org, money_limit=None, token_limit=200)
    _reserve(other_org, "theirs-1")  # fills the other organisation's budget
    with pytest.raises(BudgetExceeded) as excinfo:
        _reserve(other_org, "theirs-2")
    assert excinfo.value.budget == theirs
    # Neither its budget nor its hold counts here: two calls fit this organisation's 200.
    assert _reserve(org, "mine-1").status == Reservation.Status.HELD
    assert _reserve(org, "mine-2").status == Reservation.Status.HELD


@requires_postgres
def test_the_function_reads_the_locked_budget_not_the_cached_one(org, price):
    budget = BudgetFactory(org=org, money_limit=None, token_limit=1000)
    _reserve(org, "cached")  # caches the budget with its 1,000-token quota
    # A write that bypasses the model signals (no cache invalidation).
    Budget.objects.filter(pk=budget.pk).update(token_limit=150)
    with pytest.raises(BudgetExceeded) as excinfo:
        _reserve(org, "stale")
    assert excinfo.value.limit == 150


@requires_postgres
def test_a_refusal_inside_the_callers_transaction_leaves_it_usable(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=100)
    with transaction.atomic():
        _reserve(org, "in-tx")
        with pytest.raises(BudgetExceeded):
            _reserve(org, "in-tx-refused")
        assert Reservation.objects.filter(org=org).count() == 1  # the transaction still works


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_reserve_outside_a_transaction_commits_and_leaves_none_open(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=1000)
    reservation = _reserve(org, "autocommit")
    assert not connection.in_atomic_block
    from psycopg.pq import TransactionStatus

    assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    assert Reservation.objects.get(pk=reservation.pk).status == Reservation.Status.HELD


@requires_postgres
def test_the_function_counts_usage_and_live_holds_of_its_organisation_only(org, other_org, price):
    """Called directly: NULL while the estimate fits, then what refused."""
    budget = BudgetFactory(org=org, money_limit=None, token_limit=300)
    BudgetFactory(org=other_org, money_limit=None, token_limit=300)
    done = _reserve(org, "settled")
    services.settle(reservation=done, input_tokens=60, output_tokens=40)  # 100 used
    _reserve(org, "held")  # 100 held
    _reserve(other_org, "theirs")  # never counts for org
    period = current_period(org).key
    sql = (
        "SELECT billing_reserve_check(%s::bigint, NULL::bigint, NULL::bigint, %s::text, "
        "now(), %s::numeric, 'CNY'::text, %s::bigint)"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [org.pk, period, Decimal("0.1"), 100])
        assert cursor.fetchone()[0] is None
        cursor.execute(sql, [org.pk, period, Decimal("0.1"), 101])
        refused = cursor.fetchone()[0]
    if isinstance(refused, str):
        import json

        refused = json.loads(refused)
    assert refused == {"budget_id": budget.pk, "metric": "tokens", "used": "200", "limit": "300"}
