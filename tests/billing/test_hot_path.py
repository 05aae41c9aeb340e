"""The metering hot path (issue 19): the per-process config cache and its invalidation, the
statements reserve and settle issue, and their fallbacks."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.billing import config_cache, services
from apps.billing.models import Budget, CostLedger, Kind, ModelPrice, Reservation, UsageMonthly
from apps.core.redis import get_redis
from tests.billing.factories import BudgetFactory, ModelPriceFactory
from tests.conftest import requires_postgres

pytestmark = pytest.mark.django_db

_SAVEPOINT = ("SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK TO SAVEPOINT")


@pytest.fixture
def price(db):
    return ModelPriceFactory(model="m-hot")  # 60 in + 40 out = 0.00144 CNY


def _reserve(org, request_id, **kwargs):
    return services.reserve(
        org=org,
        provider="openai_compat",
        model=kwargs.pop("model", "m-hot"),
        kind=Kind.CHAT,
        estimated_input_tokens=kwargs.pop("tokens_in", 60),
        estimated_output_tokens=kwargs.pop("tokens_out", 40),
        request_id=request_id,
        **kwargs,
    )


def _statements(queries) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(_SAVEPOINT)]


def test_a_budget_created_after_calls_is_enforced_on_the_next_call(org, price):
    _reserve(org, "before")  # caches "no budgets" for the organisation
    BudgetFactory(org=org, money_limit=None, token_limit=150)
    with pytest.raises(services.BudgetExceeded):
        _reserve(org, "after", tokens_in=100, tokens_out=100)


def test_a_deactivated_budget_stops_refusing(org, price):
    budget = BudgetFactory(org=org, money_limit=None, token_limit=10)
    with pytest.raises(services.BudgetExceeded):
        _reserve(org, "refused")
    services.budget_update(org=org, budget_id=budget.id, is_active=False)
    assert _reserve(org, "admitted").status == Reservation.Status.HELD


def test_a_price_change_applies_to_the_next_call(org, price):
    first = _reserve(org, "p1")
    assert first.estimated_cost == Decimal("0.00144")
    ModelPriceFactory(org=org, model="m-hot", input_price_per_1k=0, output_price_per_1k=1)
    assert _reserve(org, "p2").estimated_cost == Decimal("0.04")


def test_a_write_in_another_process_is_seen_through_the_redis_token(org, price):
    _reserve(org, "seen")
    # Another process's write: the rows change without this process's signals, the token too.
    ModelPrice.objects.filter(pk=price.pk).update(output_price_per_1k=Decimal("1"))
    assert _reserve(org, "cached").estimated_cost == Decimal("0.00144")  # token unchanged
    get_redis().set(config_cache._token_key(org.pk), "changed elsewhere")
    assert _reserve(org, "reloaded").estimated_cost == Decimal("0.04048")


def test_without_redis_every_call_reads_the_database(org, price, monkeypatch):
    def down():
        raise ConnectionError("redis is down")

    from apps.core import token_cache

    monkeypatch.setattr(token_cache, "get_redis", down)
    _reserve(org, "r1")
    BudgetFactory(org=org, money_limit=None, token_limit=150)
    with pytest.raises(services.BudgetExceeded):
        _reserve(org, "r2", tokens_in=100, tokens_out=100)


def test_settling_a_stale_instance_uses_the_stored_reservation(org, price):
    reservation = _reserve(org, "stale")
    services.release(reservation=reservation)
    _reserve(org, "stale", tokens_in=500, tokens_out=100)  # re-held with another estimate
    entry = services.settle(reservation=reservation, input_tokens=None, output_tokens=None)
    assert (entry.input_tokens, entry.output_tokens) == (500, 100)
    assert entry.usage_source == CostLedger.UsageSource.ESTIMATED
    reservation.refresh_from_db()
    assert reservation.status == Reservation.Status.SETTLED


def test_settling_twice_returns_the_first_row_and_counts_once(org, price):
    reservation = _reserve(org, "twice")
    first = services.settle(reservation=reservation, input_tokens=10, output_tokens=5)
    again = services.settle(reservation=reservation, input_tokens=999, output_tokens=999)
    assert again.pk == first.pk
    assert UsageMonthly.objects.get(org=org).calls == 1


def test_a_retry_of_an_admitted_call_is_not_refused_when_the_budget_filled(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=100)
    held = _reserve(org, "admitted")
    assert _reserve(org, "admitted").pk == held.pk  # the budget is full now; same call again


@requires_postgres
def test_reserve_and_settle_are_one_statement_each_without_budgets(org, price):
    _reserve(org, "warm")  # loads the config cache: budgets, then each model's prices once
    services.record_usage(org=org, provider="gewe", model="send_text", units=1, request_id="w")
    with CaptureQueriesContext(connection) as queries:
        reservation = _reserve(org, "one")
    assert len(_statements(queries)) == 1
    with CaptureQueriesContext(connection) as queries:
        services.settle(reservation=reservation, input_tokens=10, output_tokens=10)
    assert len(_statements(queries)) == 1
    with CaptureQueriesContext(connection) as queries:
        services.record_usage(
            org=org, provider="gewe", model="send_text", units=1, request_id="platform"
        )
    assert len(_statements(queries)) == 1
    monthly = UsageMonthly.objects.get(org=org, user_id=0, wechat_account_id=0)
    assert monthly.calls == 3  # "w", "one" and "platform" ("warm" is only held)
    assert CostLedger.objects.filter(org=org).count() == 3


@requires_postgres
def test_reserve_with_a_budget_is_one_statement(org, price):
    BudgetFactory(org=org, money_limit=Decimal("10"))
    _reserve(org, "warm")
    with CaptureQueriesContext(connection) as queries:
        _reserve(org, "checked")
    # The function locks the budgets and reads the sums; the same statement inserts.
    statements = _statements(queries)
    assert len(statements) == 1
    assert "billing_reserve_check(" in statements[0]
    assert "INSERT INTO" in statements[0]


def test_warn_budgets_do_not_refuse_or_lock(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=10, action=Budget.Action.WARN)
    assert _reserve(org, "warned").status == Reservation.Status.HELD


def _claim_org_name(org, name: str, *, where_name: str):
    return (
        "UPDATE orgs_organization SET name = %s WHERE id = %s AND name = %s",
        [name, org.pk, where_name],
    )


def _call_row(org):
    from apps.integrations.models import IntegrationCall

    return IntegrationCall(org=org, service="gewe", operation="send_text", ok=True, latency_ms=3)


def test_record_usage_claimed_writes_the_ledger_only_when_the_claim_changes_a_row(org, price):
    from apps.integrations.models import IntegrationCall

    missed = services.record_usage_claimed(
        org=org,
        claim=_claim_org_name(org, "renamed", where_name="not its name"),
        provider="gewe",
        model="send_text",
        request_id="send-1",
        units=1,
        also_insert=(_call_row(org),),
    )
    assert missed is False
    assert not CostLedger.objects.filter(org=org, request_id="send-1").exists()
    assert IntegrationCall.objects.filter(org=org).count() == 1  # written either way

    claimed = services.record_usage_claimed(
        org=org,
        claim=_claim_org_name(org, "renamed", where_name=org.name),
        provider="gewe",
        model="send_text",
        request_id="send-1",
        units=1,
        wechat_account_id=None,
        also_insert=(_call_row(org),),
    )
    assert claimed is True
    org.refresh_from_db()
    assert org.name == "renamed"
    entry = CostLedger.objects.get(org=org, request_id="send-1")
    assert (entry.kind, entry.units) == (Kind.PLATFORM, 1)
    assert UsageMonthly.objects.get(org=org).calls == 1
    assert IntegrationCall.objects.filter(org=org).count() == 2


def test_record_usage_claimed_twice_records_once(org, price):
    for _ in range(2):
        services.record_usage_claimed(
            org=org,
            claim=("UPDATE orgs_organization SET name = name WHERE id = %s", [org.pk]),
            provider="gewe",
            model="send_text",
            request_id="again",
            units=1,
        )
    assert CostLedger.objects.filter(org=org, request_id="again").count() == 1
    assert UsageMonthly.objects.get(org=org).calls == 1


@requires_postgres
def test_record_usage_claimed_is_one_statement(org, price):
    services.record_usage(org=org, provider="gewe", model="send_text", units=1, request_id="w")
    with CaptureQueriesContext(connection) as queries:
        services.record_usage_claimed(
            org=org,
            claim=("UPDATE orgs_organization SET name = name WHERE id = %s", [org.pk]),
            provider="gewe",
            model="send_text",
            request_id="one",
            units=1,
            also_insert=(_call_row(org), _call_row(org)),
        )
    assert len(_statements(queries)) == 1
    assert CostLedger.objects.filter(org=org, request_id="one").exists()
