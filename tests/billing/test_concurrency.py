"""Concurrent reservations from real processes, each with its own PostgreSQL connection."""

import multiprocessing
from decimal import Decimal

import pytest
from django.db import connections

from apps.billing import services
from apps.billing.models import Kind, Reservation
from tests.billing.factories import BudgetFactory, ModelPriceFactory
from tests.conftest import requires_postgres

WORKERS = 50


def _attempt(org_id, index, barrier, results):
    from apps.orgs.models import Organization

    try:
        org = Organization.objects.get(id=org_id)
        barrier.wait(timeout=60)
        services.reserve(
            org=org,
            provider="openai_compat",
            model="m-conc",
            kind=Kind.CHAT,
            estimated_input_tokens=60,
            estimated_output_tokens=40,
            request_id=f"conc-{index}",
        )
        results.put("admitted")
    except services.BudgetExceeded:
        results.put("refused")
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(f"error: {exc!r}")
    finally:
        connections.close_all()


def _run_concurrently(org_id):
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(WORKERS)
    results = ctx.Queue()
    connections.close_all()  # children must not share the parent's socket
    procs = [
        ctx.Process(target=_attempt, args=(org_id, i, barrier, results)) for i in range(WORKERS)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    return outcomes


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_50_concurrent_reservations_admit_at_most_what_fits(org):
    ModelPriceFactory(model="m-conc")  # 60 in + 40 out = 0.00144 CNY per call
    BudgetFactory(org=org, money_limit=Decimal("0.0144"), token_limit=1000)  # fits exactly 10

    outcomes = _run_concurrently(org.id)

    assert [o for o in outcomes if o.startswith("error")] == []
    assert outcomes.count("admitted") == 10
    assert outcomes.count("refused") == WORKERS - 10
    held = Reservation.objects.filter(org=org, status=Reservation.Status.HELD)
    assert held.count() == 10
    assert sum(r.estimated_cost for r in held) == Decimal("0.0144")


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_settlements_keep_aggregates_exact(org):
    """Settling from many processes at once loses no increment of the daily/monthly sums."""
    from apps.billing.models import CostLedger, UsageDaily, UsageMonthly

    ModelPriceFactory(model="m-conc")
    reservations = [
        services.reserve(
            org=org,
            provider="p",
            model="m-conc",
            kind=Kind.CHAT,
            estimated_input_tokens=60,
            estimated_output_tokens=40,
            request_id=f"s-{i}",
        )
        for i in range(20)
    ]
    ctx = multiprocessing.get_context("fork")
    connections.close_all()

    def settle(pk):
        try:
            services.settle(
                reservation=Reservation.objects.get(pk=pk), input_tokens=1000, output_tokens=1000
            )
        finally:
            connections.close_all()

    procs = [ctx.Process(target=settle, args=(r.pk,)) for r in reservations]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * 20
    assert CostLedger.objects.filter(org=org).count() == 20
    daily = UsageDaily.objects.get(org=org)
    monthly = UsageMonthly.objects.get(org=org)
    assert daily.calls == monthly.calls == 20
    assert daily.cost == monthly.cost == Decimal("0.032") * 20


def _reserve_and_settle(org_id, index, barrier, results):
    from apps.orgs.models import Organization

    try:
        org = Organization.objects.get(id=org_id)
        barrier.wait(timeout=60)
        reservation = services.reserve(
            org=org,
            provider="p",
            model="m-conc",
            kind=Kind.CHAT,
            estimated_input_tokens=60,
            estimated_output_tokens=40,
            request_id=f"rs-{index}",
        )
        services.settle(reservation=reservation, input_tokens=60, output_tokens=40)
        results.put("admitted")
    except services.BudgetExceeded:
        results.put("refused")
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which fails the test
        results.put(f"error: {exc!r}")
    finally:
        connections.close_all()


@requires_postgres
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_reservations_racing_settlements_count_each_call_exactly_once(org):
    """Settlements move cost from "held" to "used" while reservations read both: every call is
    counted once, so exactly what fits is admitted (more would overspend, fewer would mean a
    settlement counted twice)."""
    from apps.billing.models import CostLedger, UsageMonthly

    ModelPriceFactory(model="m-conc")
    BudgetFactory(org=org, money_limit=None, token_limit=1000)  # ten calls of 100 tokens
    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(30)
    results = ctx.Queue()
    connections.close_all()
    procs = [
        ctx.Process(target=_reserve_and_settle, args=(org.id, i, barrier, results))
        for i in range(30)
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert [o for o in outcomes if o.startswith("error")] == []
    assert outcomes.count("admitted") == 10
    assert CostLedger.objects.filter(org=org).count() == 10
    assert UsageMonthly.objects.get(org=org).tokens == 1000
