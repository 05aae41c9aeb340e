import datetime as dt
import random
from collections import defaultdict
from decimal import Decimal

import pytest
import time_machine
from django.db.models import Sum

from apps.billing import selectors, services
from apps.billing.models import (
    Budget,
    BudgetAlert,
    CostLedger,
    Kind,
    ModelPrice,
    Reservation,
    UsageDaily,
    UsageMonthly,
)
from apps.core import events
from apps.core.exceptions import ApplicationError, PermissionDeniedError
from tests.billing.factories import BudgetFactory, ModelPriceFactory
from tests.orgs.factories import OrganizationFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def price(db):
    return ModelPriceFactory(model="m-chat")


@pytest.fixture
def signals():
    received = []

    def handler(sender, **kwargs):
        received.append(kwargs)

    events.budget_threshold_crossed.connect(handler, dispatch_uid="test-billing")
    yield received
    events.budget_threshold_crossed.disconnect(dispatch_uid="test-billing")


def _reserve(org, request_id, tokens_in=60, tokens_out=40, model="m-chat", **kwargs):
    return services.reserve(
        org=org,
        provider="openai_compat",
        model=model,
        kind=Kind.CHAT,
        estimated_input_tokens=tokens_in,
        estimated_output_tokens=tokens_out,
        request_id=request_id,
        **kwargs,
    )


def _record(org, request_id, cost_units=1, model="op", provider="gewe", **kwargs):
    return services.record_usage(
        org=org,
        provider=provider,
        model=model,
        units=cost_units,
        request_id=request_id,
        **kwargs,
    )


# --- Estimate -------------------------------------------------------------------------------------
def test_estimate_counts_chinese_characters_one_each():
    assert services.estimate_tokens("你好，世界") == 5  # four ideographs + full-width comma


def test_estimate_counts_english_four_characters_per_token():
    assert services.estimate_tokens("hello world!") == 3
    assert services.estimate_tokens("a") == 1
    assert services.estimate_tokens("") == 0
    assert services.estimate_tokens(None) == 0


def test_estimate_of_messages_adds_overhead_per_message_and_reply():
    messages = [
        {"role": "system", "content": "You sell tea."},  # 13 chars -> 4
        {"role": "user", "content": "多少钱"},  # 3
        {"role": "user", "content": [{"type": "text", "text": "看图"}, {"type": "image_url"}]},
    ]
    assert services.estimate_tokens(messages) == (4 + 4) + (4 + 3) + (4 + 2 + 85) + 3


def test_estimate_mixed_text():
    # 2 CJK + "ok " (3 chars, whitespace run collapsed) -> 2 + 1
    assert services.estimate_tokens("ok    好的") == 3


# --- Prices and cost ------------------------------------------------------------------------------
def test_cost_is_exact_decimal(org, price):
    cost = services.cost_for(org, "openai_compat", "m-chat", 1234, 567)
    # 1234 × 0.008 / 1000 + 567 × 0.024 / 1000 = 0.009872 + 0.013608
    assert cost == Decimal("0.02348")
    assert isinstance(cost, Decimal)
    assert services.cost_for(org, "x", "m-chat", 1, 0) == Decimal("0.000008")


def test_unit_price_for_platform_operations(org):
    ModelPriceFactory(
        provider="gewe",
        model="send_text_t",
        unit_price=Decimal("0.002"),
        input_price_per_1k=0,
        output_price_per_1k=0,
    )
    assert services.cost_for(org, "gewe", "send_text_t", units=3) == Decimal("0.006")


def test_org_price_overrides_global_even_if_global_is_newer(org, other_org):
    ModelPriceFactory(
        model="m-x",
        input_price_per_1k=Decimal("1"),
        valid_from=dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
    )
    ModelPriceFactory(org=org, model="m-x", input_price_per_1k=Decimal("0.5"))
    assert services.cost_for(org, "any", "m-x", 1000, 0) == Decimal("0.5")
    assert services.cost_for(other_org, "any", "m-x", 1000, 0) == Decimal("1")


def test_valid_from_chooses_the_price_in_force(org):
    ModelPriceFactory(
        model="m-v",
        input_price_per_1k=Decimal("1"),
        valid_from=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )
    ModelPriceFactory(
        model="m-v",
        input_price_per_1k=Decimal("2"),
        valid_from=dt.datetime(2024, 7, 1, tzinfo=dt.UTC),
    )
    march = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    august = dt.datetime(2024, 8, 1, tzinfo=dt.UTC)
    assert services.cost_for(org, "p", "m-v", 1000, 0, at=march) == Decimal("1")
    assert services.cost_for(org, "p", "m-v", 1000, 0, at=august) == Decimal("2")
    with pytest.raises(services.PriceNotFound):
        services.cost_for(org, "p", "m-v", 1000, 0, at=dt.datetime(2023, 1, 1, tzinfo=dt.UTC))


def test_exact_provider_beats_wildcard(org):
    ModelPriceFactory(model="m-p", provider="*", input_price_per_1k=Decimal("1"))
    ModelPriceFactory(model="m-p", provider="dify", input_price_per_1k=Decimal("3"))
    assert services.cost_for(org, "dify", "m-p", 1000, 0) == Decimal("3")
    assert services.cost_for(org, "fastgpt", "m-p", 1000, 0) == Decimal("1")


def test_seeded_default_prices(org):
    from importlib import import_module

    from django.apps import apps as django_apps

    seed = import_module("apps.billing.migrations.0002_seed_default_prices")
    seed.seed(django_apps, None)  # idempotent: the migration already ran
    assert services.cost_for(org, "fastgpt", "qwen-plus", 1000, 1000) == Decimal("0.032")
    assert services.cost_for(org, "dify", "doubao-pro-32k", 1000, 0) == Decimal("0.008")
    for model in ("gpt-4o-mini", "qwen-turbo", "deepseek-chat"):
        assert services.cost_for(org, "openai_compat", model, 1000, 1000) > 0
    for provider in ("gewe", "ecloud"):
        for op in ("send_text", "send_image", "send_file", "send_link"):
            assert services.cost_for(org, provider, op, units=1) > 0


def test_unknown_price_records_zero_cost_or_provider_cost(org):
    entry = _record(org, "r-unpriced", model="nothing")
    assert entry.cost == 0 and entry.price is None
    entry = services.record_usage(
        org=org,
        provider="dify",
        model="unpriced",
        kind=Kind.CHAT,
        input_tokens=10,
        output_tokens=5,
        request_id="r-dify",
        provider_cost=Decimal("0.0012890"),
        provider_currency="RMB",
    )
    assert entry.cost == Decimal("0.001289") and entry.currency == "CNY"
    assert entry.provider_cost == Decimal("0.001289") and entry.provider_currency == "CNY"


def test_ledger_keeps_provider_cost_separately_from_local_cost(org, price):
    resv = _reserve(org, "r1")
    entry = services.settle(
        reservation=resv,
        input_tokens=1000,
        output_tokens=1000,
        provider_cost=Decimal("0"),
        provider_currency="USD",
    )
    assert entry.cost == Decimal("0.032")
    assert entry.provider_cost == 0 and entry.provider_currency == "USD"


def test_many_small_costs_sum_exactly(org):
    ModelPriceFactory(
        model="m-tiny", input_price_per_1k=Decimal("0.0003"), output_price_per_1k=Decimal("0")
    )
    for i in range(30):
        services.record_usage(
            org=org,
            provider="p",
            model="m-tiny",
            kind=Kind.INTENT,
            input_tokens=1,
            request_id=f"tiny-{i}",
        )
    expected = Decimal("0.0003") / 1000 * 30
    assert UsageMonthly.objects.get(org=org).cost == expected
    assert CostLedger.objects.filter(org=org).aggregate(s=Sum("cost"))["s"] == expected


# --- Idempotency ----------------------------------------------------------------------------------
def test_record_usage_twice_is_a_no_op(org, price):
    first = services.record_usage(
        org=org,
        provider="p",
        model="m-chat",
        kind=Kind.CHAT,
        input_tokens=100,
        output_tokens=10,
        request_id="dup",
    )
    second = services.record_usage(
        org=org,
        provider="p",
        model="m-chat",
        kind=Kind.CHAT,
        input_tokens=999,
        output_tokens=999,
        request_id="dup",
    )
    assert first.pk == second.pk
    assert CostLedger.objects.filter(org=org).count() == 1
    assert UsageDaily.objects.get(org=org).calls == 1
    assert UsageMonthly.objects.get(org=org).tokens == 110


def test_same_request_id_in_two_orgs_is_two_rows(org, other_org, price):
    _record(org, "shared-id")
    _record(other_org, "shared-id")
    assert CostLedger.objects.filter(request_id="shared-id").count() == 2


def test_reserve_and_settle_are_idempotent(org, price):
    first = _reserve(org, "req")
    assert _reserve(org, "req", tokens_in=9999).pk == first.pk
    entry = services.settle(reservation=first, input_tokens=100, output_tokens=50)
    again = services.settle(reservation=first, input_tokens=7, output_tokens=7)
    assert entry.pk == again.pk and again.input_tokens == 100
    first.refresh_from_db()
    assert first.status == Reservation.Status.SETTLED
    assert entry.reservation_id == first.pk
    assert UsageDaily.objects.get(org=org).calls == 1


def test_settle_without_usage_bills_the_estimate(org, price):
    resv = _reserve(org, "est", tokens_in=300, tokens_out=200)
    entry = services.settle(reservation=resv, input_tokens=None, output_tokens=None)
    assert (entry.input_tokens, entry.output_tokens) == (300, 200)
    assert entry.usage_source == CostLedger.UsageSource.ESTIMATED


def test_settle_may_name_the_model_actually_used(org, price):
    ModelPriceFactory(
        model="m-big", input_price_per_1k=Decimal("1"), output_price_per_1k=Decimal("1")
    )
    resv = _reserve(org, "swap")
    entry = services.settle(reservation=resv, input_tokens=1000, output_tokens=0, model="m-big")
    assert entry.model == "m-big" and entry.cost == Decimal("1")


def test_release_is_idempotent_and_only_releases_held(org, price):
    resv = _reserve(org, "rel")
    assert services.release(reservation=resv).status == Reservation.Status.RELEASED
    assert services.release(reservation=resv).status == Reservation.Status.RELEASED
    settled = _reserve(org, "rel-2")
    services.settle(reservation=settled, input_tokens=1, output_tokens=1)
    assert services.release(reservation=settled).status == Reservation.Status.SETTLED


# --- Budgets: blocking, scopes --------------------------------------------------------------------
def test_reserve_blocks_at_the_token_quota(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=250)
    a = _reserve(org, "a")  # 100 tokens
    _reserve(org, "b")  # 200 held
    with pytest.raises(services.BudgetExceeded) as excinfo:
        _reserve(org, "c")
    assert excinfo.value.status_code == 402 and excinfo.value.code == "budget_exceeded"
    assert excinfo.value.metric == "tokens"
    assert not Reservation.objects.filter(org=org, request_id="c").exists()
    services.release(reservation=a)
    assert _reserve(org, "c").status == Reservation.Status.HELD


def test_reserve_blocks_at_the_money_limit_counting_settled_usage(org, price):
    # Each reservation: 60 × 0.008/1000 + 40 × 0.024/1000 = 0.00144
    BudgetFactory(org=org, money_limit=Decimal("0.00300"))
    r1 = _reserve(org, "m1")
    services.settle(reservation=r1, input_tokens=60, output_tokens=40)
    _reserve(org, "m2")  # 0.00144 used + 0.00144 held = 0.00288
    with pytest.raises(services.BudgetExceeded) as excinfo:
        _reserve(org, "m3")
    assert excinfo.value.metric == "money"
    assert excinfo.value.used == Decimal("0.00288")


def test_exactly_at_the_limit_is_admitted(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=200)
    _reserve(org, "e1")
    _reserve(org, "e2")
    with pytest.raises(services.BudgetExceeded):
        _reserve(org, "e3", tokens_in=1, tokens_out=0)


def test_warn_only_budget_never_blocks(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=100, action=Budget.Action.WARN)
    for i in range(3):
        resv = _reserve(org, f"w{i}")
        services.settle(reservation=resv, input_tokens=60, output_tokens=40)
    assert BudgetAlert.objects.filter(org=org).count() == 3  # 80, 95, 100 once each


def test_inactive_budget_is_ignored(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=1, is_active=False)
    assert _reserve(org, "x").status == Reservation.Status.HELD


def test_user_budget_limits_only_that_user(org, price, make_member):
    alice, bob = make_member(), make_member()
    services.budget_create(org=org, scope=Budget.Scope.USER, user=alice, token_limit=150)
    _reserve(org, "a1", user=alice)
    with pytest.raises(services.BudgetExceeded):
        _reserve(org, "a2", user=alice)
    _reserve(org, "b1", user=bob)
    _reserve(org, "b2", user=bob)


def test_account_budget_limits_only_that_account(org, price):
    from tests.wechat_accounts.factories import WeChatAccountFactory

    # The budget's account must be one of the organisation's (issue 18).
    account, other = WeChatAccountFactory(org=org), WeChatAccountFactory(org=org)
    services.budget_create(
        org=org, scope=Budget.Scope.ACCOUNT, wechat_account_id=account.id, token_limit=150
    )
    _reserve(org, "a1", wechat_account_id=account.id)
    with pytest.raises(services.BudgetExceeded):
        _reserve(org, "a2", wechat_account_id=account.id)
    _reserve(org, "other", wechat_account_id=other.id)
    _reserve(org, "none")


def test_other_orgs_usage_does_not_count(org, other_org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=150)
    for i in range(5):
        resv = _reserve(other_org, f"o{i}")
        services.settle(reservation=resv, input_tokens=1000, output_tokens=1000)
    assert _reserve(org, "mine").status == Reservation.Status.HELD


def test_budget_validation(org, make_member, outsider):
    with pytest.raises(Exception) as excinfo:
        services.budget_create(org=org, scope=Budget.Scope.ORG)
    assert "money_limit" in str(excinfo.value)
    with pytest.raises(Exception) as excinfo:
        services.budget_create(org=org, scope=Budget.Scope.USER, token_limit=5)
    assert "user" in str(excinfo.value)
    with pytest.raises(ApplicationError):
        services.budget_create(org=org, scope=Budget.Scope.USER, user=outsider, token_limit=5)
    with pytest.raises(Exception) as excinfo:
        services.budget_create(org=org, token_limit=5, soft_thresholds=[80, 120])
    assert "soft_thresholds" in str(excinfo.value)
    budget = services.budget_create(org=org, token_limit=5, soft_thresholds=[95, 50, 95])
    assert budget.soft_thresholds == [50, 95] and budget.thresholds == [50, 95, 100]


# --- Thresholds -----------------------------------------------------------------------------------
@time_machine.travel(dt.datetime(2025, 3, 10, 4, 0, tzinfo=dt.UTC), tick=False)
def test_thresholds_fire_once_per_period(org, signals, django_capture_on_commit_callbacks):
    ModelPriceFactory(
        provider="gewe",
        model="op",
        unit_price=Decimal("1"),
        input_price_per_1k=0,
        output_price_per_1k=0,
    )
    budget = BudgetFactory(org=org, money_limit=Decimal("100"), action=Budget.Action.WARN)
    n = 0

    def spend(units):
        nonlocal n
        n += 1
        with django_capture_on_commit_callbacks(execute=True):
            _record(org, f"s{n}", cost_units=units)

    spend(79)
    assert signals == []
    spend(1)  # 80 %
    spend(5)  # 85 %: no new alert
    assert [s["threshold"] for s in signals] == [80]
    spend(10)  # 95 %
    spend(4)  # 99 %
    spend(1)  # 100 %
    spend(50)  # 150 %: already fired
    assert [s["threshold"] for s in signals] == [80, 95, 100]
    assert signals[0] == {
        "signal": events.budget_threshold_crossed,
        "org_id": org.id,
        "budget_id": budget.id,
        "threshold": 80,
        "period": "2025-03",
        "used": Decimal("80"),
        "limit": Decimal("100"),
        "metric": "money",
        "percent": Decimal("80.00"),
        "currency": "CNY",
        "scope": "org",
        "action": "warn",
        "blocked": False,
        "alert_id": signals[0]["alert_id"],
    }
    with time_machine.travel(dt.datetime(2025, 4, 2, tzinfo=dt.UTC), tick=False):
        spend(96)
    assert [s["threshold"] for s in signals] == [80, 95, 100, 80, 95]
    assert signals[-1]["period"] == "2025-04"
    assert set(BudgetAlert.objects.filter(budget=budget).values_list("period", "threshold")) == {
        ("2025-03", 80),
        ("2025-03", 95),
        ("2025-03", 100),
        ("2025-04", 80),
        ("2025-04", 95),
    }


def test_threshold_pushes_a_stats_update_to_the_monitor_group(
    org, monkeypatch, django_capture_on_commit_callbacks
):
    pushed = []
    monkeypatch.setattr(
        "apps.core.realtime.push",
        lambda event_type, data, groups: pushed.append((event_type, data, groups)),
    )
    ModelPriceFactory(
        provider="gewe",
        model="op",
        unit_price=Decimal("1"),
        input_price_per_1k=0,
        output_price_per_1k=0,
    )
    BudgetFactory(org=org, money_limit=Decimal("10"), soft_thresholds=[])
    with django_capture_on_commit_callbacks(execute=True):
        _record(org, "p1", cost_units=10)
    # Only billing's own push (receivers of the signal, e.g. monitoring, may push their own).
    ours = [p for p in pushed if p[1].get("source") == "billing"]
    assert len(ours) == 1
    event_type, data, groups = ours[0]
    assert event_type == "stats_update" and groups == [f"org.{org.id}.monitor"]
    assert data["event"] == "budget_threshold_crossed" and data["threshold"] == 100


def test_refusal_raises_the_100_percent_alert_once(
    org, price, signals, django_capture_on_commit_callbacks
):
    BudgetFactory(org=org, money_limit=None, token_limit=100)
    _reserve(org, "ok")
    for i in range(3):
        with (
            django_capture_on_commit_callbacks(execute=True),
            pytest.raises(services.BudgetExceeded),
        ):
            _reserve(org, f"no{i}")
    alert = BudgetAlert.objects.get(org=org)
    assert alert.threshold == 100 and alert.blocked and alert.metric == "tokens"
    assert [s["threshold"] for s in signals] == [100]
    assert signals[0]["blocked"] is True


def test_alerts_do_not_fire_without_a_committed_transaction(org, signals):
    ModelPriceFactory(
        provider="gewe",
        model="op",
        unit_price=Decimal("1"),
        input_price_per_1k=0,
        output_price_per_1k=0,
    )
    BudgetFactory(org=org, money_limit=Decimal("1"))
    _record(org, "x", cost_units=5)  # test transaction never commits
    assert signals == []
    assert BudgetAlert.objects.filter(org=org).count() == 3


# --- Reservation expiry ---------------------------------------------------------------------------
def test_stale_reservation_stops_counting_and_is_expired(org, price, settings):
    settings.BILLING_RESERVATION_TTL_SECONDS = 60
    BudgetFactory(org=org, money_limit=None, token_limit=100)
    start = dt.datetime(2025, 5, 5, 3, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False):
        stale = _reserve(org, "crashed")
        with pytest.raises(services.BudgetExceeded):
            _reserve(org, "blocked")
    with time_machine.travel(start + dt.timedelta(seconds=61), tick=False):
        fresh = _reserve(org, "after-expiry")
        assert fresh.status == Reservation.Status.HELD
        assert services.reservations_expire(org=org) == 1
        assert services.reservations_expire(org=org) == 0
    stale.refresh_from_db()
    assert stale.status == Reservation.Status.EXPIRED
    # A late answer for an expired reservation is still billed.
    entry = services.settle(reservation=stale, input_tokens=10, output_tokens=10)
    stale.refresh_from_db()
    assert stale.status == Reservation.Status.SETTLED and entry.input_tokens == 10


# --- Time zones -----------------------------------------------------------------------------------
def test_period_is_the_month_in_the_org_time_zone(price):
    shanghai = OrganizationFactory(slug="sh", timezone="Asia/Shanghai")
    la = OrganizationFactory(slug="la", timezone="America/Los_Angeles")
    # 2025-01-31 17:30 UTC = 2025-02-01 01:30 in Shanghai, 2025-01-31 09:30 in Los Angeles.
    instant = dt.datetime(2025, 1, 31, 17, 30, tzinfo=dt.UTC)
    with time_machine.travel(instant, tick=False):
        for org in (shanghai, la):
            services.record_usage(
                org=org,
                provider="p",
                model="m-chat",
                kind=Kind.CHAT,
                input_tokens=1000,
                request_id="tz",
            )
    assert UsageMonthly.objects.get(org=shanghai).period == "2025-02"
    assert UsageDaily.objects.get(org=shanghai).date == dt.date(2025, 2, 1)
    assert UsageMonthly.objects.get(org=la).period == "2025-01"
    assert UsageDaily.objects.get(org=la).date == dt.date(2025, 1, 31)


def test_budget_resets_at_local_midnight_of_the_first(price):
    org = OrganizationFactory(slug="sh2", timezone="Asia/Shanghai")
    BudgetFactory(org=org, money_limit=None, token_limit=100)
    # 15:59 UTC on Jan 31 = 23:59 Shanghai: still January.
    with time_machine.travel(dt.datetime(2025, 1, 31, 15, 59, tzinfo=dt.UTC), tick=False):
        services.settle(reservation=_reserve(org, "jan"), input_tokens=60, output_tokens=40)
        with pytest.raises(services.BudgetExceeded):
            _reserve(org, "jan-2")
    # 16:00 UTC = 00:00 Feb 1 in Shanghai: a new period, the quota is free again.
    with time_machine.travel(dt.datetime(2025, 1, 31, 16, 0, tzinfo=dt.UTC), tick=False):
        resv = _reserve(org, "feb")
        assert resv.status == Reservation.Status.HELD
        status = selectors.budget_status(budget=Budget.objects.get(org=org), org=org)
        assert status.period.key == "2025-02" and status.tokens_held == 100
        assert status.tokens_used == 0


# --- Usage aggregation ----------------------------------------------------------------------------
def _random_usage(org, users, n=120, seed=7):
    rng = random.Random(seed)
    for model, price_in, price_out in (("m-a", "0.008", "0.024"), ("m-b", "0.0003", "0.0006")):
        ModelPriceFactory(
            model=model,
            input_price_per_1k=Decimal(price_in),
            output_price_per_1k=Decimal(price_out),
        )
    ModelPriceFactory(
        provider="gewe",
        model="send",
        unit_price=Decimal("0.002"),
        input_price_per_1k=0,
        output_price_per_1k=0,
    )
    base = dt.datetime(2025, 6, 1, tzinfo=dt.UTC)
    for i in range(n):
        at = base + dt.timedelta(hours=rng.randrange(0, 24 * 45))
        user = rng.choice([*users, None])
        account = rng.choice([1, 2, 3, None])
        with time_machine.travel(at, tick=False):
            if rng.random() < 0.3:
                services.record_usage(
                    org=org,
                    provider="gewe",
                    model="send",
                    units=1,
                    user=user,
                    wechat_account_id=account,
                    request_id=f"u{i}",
                )
            else:
                resv = services.reserve(
                    org=org,
                    provider="fastgpt",
                    model=rng.choice(["m-a", "m-b"]),
                    kind=rng.choice([Kind.CHAT, Kind.INTENT]),
                    estimated_input_tokens=100,
                    estimated_output_tokens=100,
                    request_id=f"u{i}",
                    user=user,
                    wechat_account_id=account,
                )
                services.settle(
                    reservation=resv,
                    input_tokens=rng.randrange(1, 5000),
                    output_tokens=rng.randrange(0, 2000),
                )


def test_usage_report_equals_ledger_sums(org, make_member):
    users = [make_member(), make_member()]
    _random_usage(org, users)
    ledger = list(CostLedger.objects.filter(org=org))
    tz = org.tzinfo
    report = selectors.usage_report(org=org, start=dt.date(2025, 6, 1), end=dt.date(2025, 7, 31))

    [total] = report.totals
    assert total["cost"] == sum(e.cost for e in ledger)
    assert total["calls"] == len(ledger)
    assert total["input_tokens"] == sum(e.input_tokens for e in ledger)
    assert total["units"] == sum(e.units for e in ledger)

    by_day = defaultdict(Decimal)
    by_model = defaultdict(Decimal)
    by_user = defaultdict(Decimal)
    by_account = defaultdict(Decimal)
    for e in ledger:
        by_day[e.created_at.astimezone(tz).date()] += e.cost
        by_model[(e.provider, e.model, e.kind)] += e.cost
        by_user[e.user_id] += e.cost
        if e.wechat_account_id:
            by_account[e.wechat_account_id] += e.cost
    assert {r["date"]: r["cost"] for r in report.by_day} == dict(by_day)
    assert {(r["provider"], r["model"], r["kind"]): r["cost"] for r in report.by_model} == dict(
        by_model
    )
    assert {r["user_id"]: r["cost"] for r in report.by_user} == dict(by_user)
    assert {r["wechat_account_id"]: r["cost"] for r in report.by_account} == dict(by_account)
    assert {r["user_email"] for r in report.by_user if r["user_id"]} == {u.email for u in users}

    # A date range narrower than the data, filtered by user.
    june = selectors.usage_report(
        org=org, start=dt.date(2025, 6, 1), end=dt.date(2025, 6, 30), user_id=users[0].id
    )
    expected = sum(
        e.cost
        for e in ledger
        if e.user_id == users[0].id and e.created_at.astimezone(tz).month == 6
    )
    assert june.totals[0]["cost"] == expected


def test_usage_rebuild_reproduces_the_aggregates(org, make_member):
    _random_usage(org, [make_member()], n=60, seed=3)

    def snapshot():
        daily = sorted(
            UsageDaily.objects.filter(org=org).values_list(
                "date",
                "provider",
                "model",
                "kind",
                "user_id",
                "wechat_account_id",
                "currency",
                "calls",
                "input_tokens",
                "output_tokens",
                "units",
                "cost",
            )
        )
        monthly = sorted(
            UsageMonthly.objects.filter(org=org).values_list(
                "period", "user_id", "wechat_account_id", "currency", "calls", "tokens", "cost"
            )
        )
        return daily, monthly

    before = snapshot()
    assert services.usage_rebuild(org=org) == len(before[0])
    assert snapshot() == before


def test_budget_status_reports_percent_and_projection(org, price):
    budget = BudgetFactory(org=org, money_limit=Decimal("1"), token_limit=10000)
    with time_machine.travel(dt.datetime(2025, 4, 10, 16, 0, tzinfo=dt.UTC), tick=False):
        # 10 April 16:00 UTC = 11 April 00:00 Shanghai: 10 of 30 days elapsed.
        resv = _reserve(org, "s", tokens_in=1000, tokens_out=0)  # settled within its hold
        services.settle(reservation=resv, input_tokens=1000, output_tokens=0)  # 0.008, 1000 tok
        _reserve(org, "held")
        status = selectors.budget_status(budget=budget, org=org)
    assert status.period.key == "2025-04"
    assert status.money_used == Decimal("0.008") and status.tokens_used == 1000
    assert status.tokens_held == 100
    assert status.money_percent == Decimal("0.80") and status.token_percent == Decimal("10.00")
    assert status.percent == Decimal("10.00") and status.metric == "tokens"
    assert status.projected_tokens == 3000
    assert status.projected_money == Decimal("0.0240")
    assert not status.blocked


def test_price_update_rejects_global_price(org):
    global_price = ModelPriceFactory(model="g")
    with pytest.raises(PermissionDeniedError):
        services.price_update(org=org, price_id=global_price.id, input_price_per_1k=1)
    own = services.price_create(
        org=org, provider="GEWE ", model="send_text", unit_price=1, currency="cny"
    )
    assert (own.provider, own.currency) == ("gewe", "CNY")
    assert ModelPrice.objects.filter(org=org).count() == 1


def test_retry_after_release_holds_the_same_reservation_again(org, price):
    BudgetFactory(org=org, money_limit=None, token_limit=150)
    first = _reserve(org, "retry")
    services.release(reservation=first)
    again = _reserve(org, "retry")
    assert again.pk == first.pk and again.status == Reservation.Status.HELD
    assert again.finished_at is None
    services.release(reservation=again)
    _reserve(org, "other")  # 100 of 150 tokens held now
    with pytest.raises(services.BudgetExceeded):
        _reserve(org, "retry")  # the retry is checked like a new call
    assert Reservation.objects.get(pk=first.pk).status == Reservation.Status.RELEASED
