"""Benchmark of billing against PostgreSQL: reserve+settle throughput with concurrent worker
processes, and the latency of the ``usage/`` endpoint on a 1,000,000-row ledger.

It creates (drops first) its own database (``--database``, default ``bench_billing``) on the
server of DATABASE_URL,
migrates it, COPYs --rows ledger rows spread over the last 90 days into one organisation,
rebuilds the daily/monthly aggregates from them, and measures, each next to a baseline taken in
the same run:

1. ``GET /api/v1/billing/usage/`` (this month; and a 90-day range) through the Django test
   client, p50/p95 — baseline: ``GET /api/v1/orgs/current/`` through the same client (framework
   and authentication cost), a bare ``SELECT 1`` round trip, and a plain ``count(*)`` of the
   organisation's ledger rows (what scanning the ledger would cost).
2. ``reserve`` + ``settle`` pairs per second from --workers processes against the big
   organisation (an organisation budget and per-account budgets, all locked per call), and
   against an organisation without budgets — baselines: the same processes running empty
   transactions (``BEGIN; SELECT 1; COMMIT``), and pairs of one-row write transactions (a
   reserve+settle pair commits twice; each commit waits for the WAL flush). The settled usage
   stays within the reservation (a provider honouring ``max_tokens``); a last phase
   (``overrun``) has about half the answers longer than reserved, as a provider ignoring
   ``max_tokens`` does: each is capped to the reservation and raises monitoring's quota alert
   (one open alert per AI app, so those settlements queue on its row).

The last line is one JSON object: ``{"bench": "billing", "pairs_per_s": …, "plain_pairs_per_s":
…, "ratio": …, ...}`` (``pairs_per_s`` is the organisation with budgets; the one without budgets
is ``nobudget_pairs_per_s``). Issue 19's goal: ``ratio`` ≥ 0.3.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x .venv/bin/python bench/billing/run.py
    options: --rows 1000000 --workers 8 --seconds 10 --requests 60 --database bench_billing
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[2]
BENCH_DB = "bench_billing"
MODELS = [
    # provider, model, kind, weight
    ("fastgpt", "qwen-plus", "chat", 40),
    ("dify", "doubao-pro-32k", "chat", 20),
    ("openai_compat", "deepseek-chat", "chat", 10),
    ("openai_compat", "gpt-4o-mini", "sentiment", 5),
    ("openai_compat", "qwen-turbo", "intent", 10),
    ("gewe", "send_text", "platform", 15),
]
USERS = 30
ACCOUNTS = 60


def _bench_url(url: str, name: str = BENCH_DB) -> str:
    parsed = urlparse(url)
    return urlunparse(parsed._replace(path=f"/{name}"))


def _create_database(url: str, name: str = BENCH_DB) -> None:
    import psycopg

    parsed = urlparse(url)
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["CACHE_KEY_PREFIX"] = "bench-billing"
    os.environ["CHANNELS_PREFIX"] = "bench-billing"
    import django

    django.setup()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def fmt_ms(values: list[float]) -> str:
    return f"p50 {pct(values, 50) * 1000:8.2f} ms   p95 {pct(values, 95) * 1000:8.2f} ms"


# --- Data -----------------------------------------------------------------------------------------
def _fixtures():
    from apps.accounts.models import User
    from apps.billing import services
    from apps.billing.models import Budget
    from apps.orgs.models import Membership, Organization, Role

    org = Organization.objects.create(name="Bench", slug="bench", timezone="Asia/Shanghai")
    quiet = Organization.objects.create(name="No budget", slug="nobudget")
    users = [
        User.objects.create_user(email=f"u{i}@bench.local", password="x", default_org=org)
        for i in range(USERS)
    ]
    Membership.objects.bulk_create(
        [
            Membership(org=org, user=u, role=Role.ADMIN if i == 0 else Role.AGENT)
            for i, u in enumerate(users)
        ]
    )
    Membership.objects.create(org=quiet, user=users[0], role=Role.OWNER)
    services.budget_create(org=org, money_limit=Decimal("1000000000"), name="org")
    # Account budgets name plain account ids: ``budget_create`` checks that the WeChat account
    # exists, which the bench does not need (billing stores the id only), so they are inserted
    # directly, validated like the service does.
    account_budgets = [
        Budget(
            org=org,
            scope=Budget.Scope.ACCOUNT,
            wechat_account_id=account,
            token_limit=10**15,
            name=f"acct {account}",
        )
        for account in range(1, ACCOUNTS + 1)
    ]
    for budget in account_budgets:
        budget.full_clean()
    Budget.objects.bulk_create(account_budgets)
    return org, quiet, users


def _load_ledger(org, users, rows: int) -> float:
    """COPY ``rows`` ledger rows (last 90 days, exact costs from the seeded prices)."""
    import datetime as dt

    from django.db import connection
    from django.utils import timezone

    from apps.billing import selectors

    rng = random.Random(42)
    now = timezone.now()
    span = 90 * 86400
    prices = {
        (p, m): selectors.price_get_in_force(org=org, provider=p, model=m)
        for p, m, _k, _w in MODELS
    }
    choices = [(p, m, k) for p, m, k, w in MODELS for _ in range(w)]
    user_ids = [u.id for u in users]
    columns = (
        "org_id, request_id, user_id, wechat_account_id, conversation_id, sop_run_id, provider, "
        "model, kind, input_tokens, output_tokens, units, cost, currency, provider_currency, "
        "usage_source, price_id, created_at"
    )
    started = time.perf_counter()
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg 3 cursor
        with raw.copy(f"COPY billing_costledger ({columns}) FROM STDIN") as copy:
            lines = []
            for i in range(rows):
                provider, model, kind = rng.choice(choices)
                price = prices[(provider, model)]
                account = rng.randint(1, ACCOUNTS)
                user_id = user_ids[account % USERS]
                if kind == "platform":
                    tin, tout, units = 0, 0, 1
                else:
                    tin, tout, units = rng.randint(50, 4000), rng.randint(10, 800), 0
                cost = (
                    Decimal(tin) * price.input_price_per_1k / 1000
                    + Decimal(tout) * price.output_price_per_1k / 1000
                    + Decimal(units) * price.unit_price
                ).quantize(Decimal("0.0000000001"))
                at = now - dt.timedelta(seconds=rng.randrange(span))
                lines.append(
                    f"{org.id}\tbench-{i}\t{user_id}\t{account}\t{rng.randint(1, 50000)}\t\\N\t"
                    f"{provider}\t{model}\t{kind}\t{tin}\t{tout}\t{units}\t{cost}\tCNY\t\t"
                    f"reported\t{price.id}\t{at.isoformat()}\n"
                )
                if len(lines) >= 20000:
                    copy.write("".join(lines))
                    lines = []
            copy.write("".join(lines))
        cursor.execute("ANALYZE billing_costledger")
    return time.perf_counter() - started


# --- Measurements ---------------------------------------------------------------------------------
def _timed(fn, n: int) -> list[float]:
    fn()  # warm up
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def _http_latency(org, admin, n: int) -> None:
    import datetime as dt

    from django.db import connection
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(user=admin)
    client.credentials(HTTP_X_ORGANIZATION=org.slug)
    today = dt.date.today()

    def get(url, params=None):
        response = client.get(url, params or {})
        assert response.status_code == 200, response.content[:500]
        return response

    def select_one():
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    def count_ledger():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM billing_costledger WHERE org_id = %s", [org.id])
            cursor.fetchone()

    month = get("/api/v1/billing/usage/").json()
    quarter = {"start": str(today - dt.timedelta(days=89)), "end": str(today)}
    body = get("/api/v1/billing/usage/", quarter).json()
    print(
        f"  usage/ this month: {month['totals'][0]['calls']:,} calls, "
        f"{len(month['by_day'])} days, {len(month['by_model'])} models, "
        f"{len(month['by_user'])} users, {len(month['by_account'])} accounts, "
        f"{len(month['budgets'])} budgets"
    )
    print(f"  usage/ 90 days:    {body['totals'][0]['calls']:,} calls")
    rows = [
        ("baseline SELECT 1 round trip", _timed(select_one, n)),
        ("baseline GET orgs/current/", _timed(lambda: get("/api/v1/orgs/current/"), n)),
        ("baseline count(*) of org ledger", _timed(count_ledger, max(5, n // 6))),
        ("GET billing/usage/ (this month)", _timed(lambda: get("/api/v1/billing/usage/"), n)),
        ("GET billing/usage/ (90 days)", _timed(lambda: get("/api/v1/billing/usage/", quarter), n)),
        ("GET billing/ledger/ (first page)", _timed(lambda: get("/api/v1/billing/ledger/"), n)),
        (
            "GET billing/ledger/?wechat_account_id=7",
            _timed(lambda: get("/api/v1/billing/ledger/", {"wechat_account_id": 7}), n),
        ),
    ]
    for label, samples in rows:
        print(f"  {label:42s} {fmt_ms(samples)}   (n={len(samples)})")


def _worker(args) -> dict:
    mode, org_id, worker, seconds, start_at = args
    from django.db import connection, connections, transaction

    from apps.accounts.models import User
    from apps.billing import services
    from apps.orgs.models import Organization

    connections.close_all()
    org = Organization.objects.get(id=org_id)
    users = list(User.objects.filter(email__endswith="@bench.local").order_by("id"))
    rng = random.Random(worker)
    latencies = []
    while time.time() < start_at:
        time.sleep(0.005)
    deadline = start_at + seconds
    i = 0
    while time.time() < deadline:
        started = time.perf_counter()
        if mode == "baseline":
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute("SELECT 1")
                cursor.fetchone()
        elif mode == "baseline-writes":
            for _ in range(2):  # reserve and settle commit twice
                with transaction.atomic(), connection.cursor() as cursor:
                    cursor.execute("INSERT INTO bench_scratch (v) VALUES (%s)", [i])
        else:
            account = rng.randint(1, ACCOUNTS)
            reservation = services.reserve(
                org=org,
                provider="fastgpt",
                model="qwen-plus",
                kind="chat",
                estimated_input_tokens=800,
                estimated_output_tokens=200,
                user=users[account % USERS],
                wechat_account_id=account,
                request_id=f"{mode}-{worker}-{i}",
            )
            if mode == "overrun":
                # About half the answers are longer than reserved (a provider ignoring
                # max_tokens): capped to the reservation and a quota alert raised each time.
                used_in, used_out = rng.randint(100, 1500), rng.randint(10, 400)
            else:
                used_in, used_out = rng.randint(100, 800), rng.randint(10, 200)
            services.settle(reservation=reservation, input_tokens=used_in, output_tokens=used_out)
        latencies.append(time.perf_counter() - started)
        i += 1
    connections.close_all()
    return {"ops": i, "latencies": latencies}


def _throughput(mode: str, org_id: int, workers: int, seconds: float) -> tuple[float, list]:
    from django.db import connections

    connections.close_all()
    ctx = mp.get_context("fork")
    start_at = time.time() + 1.0
    with ctx.Pool(workers) as pool:
        results = pool.map(_worker, [(mode, org_id, w, seconds, start_at) for w in range(workers)])
    ops = sum(r["ops"] for r in results)
    latencies = [x for r in results for x in r["latencies"]]
    return ops / seconds, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=60)
    parser.add_argument(
        "--database",
        default=BENCH_DB,
        help="name of the database the bench creates (dropped first) on DATABASE_URL's server",
    )
    args = parser.parse_args()
    if not args.database.replace("_", "").isalnum():
        sys.exit("--database: letters, digits and underscores only.")

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL server (the script creates bench_billing).")
    _create_database(url, args.database)
    os.environ["DATABASE_URL"] = _bench_url(url, args.database)
    _setup()

    from django.core.management import call_command
    from django.db import connection

    from apps.billing import services
    from apps.billing.models import CostLedger, Reservation, UsageDaily, UsageMonthly

    total_started = time.perf_counter()
    print(
        f"database {connection.settings_dict['NAME']} on "
        f"{connection.settings_dict['HOST']}, PostgreSQL {connection.pg_version}, "
        f"{os.cpu_count()} CPUs"
    )
    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE bench_scratch (id bigserial PRIMARY KEY, v integer)")
        cursor.execute("SHOW synchronous_commit")
        sync_commit = cursor.fetchone()[0]
    print(f"synchronous_commit={sync_commit}")
    org, quiet, users = _fixtures()

    print(f"\nLoading {args.rows:,} ledger rows ...")
    load_s = _load_ledger(org, users, args.rows)
    started = time.perf_counter()
    daily_rows = services.usage_rebuild(org=org)
    rebuild_s = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE billing_usagedaily")
        cursor.execute("ANALYZE billing_usagemonthly")
    print(
        f"  COPY {load_s:.1f} s; usage_rebuild {rebuild_s:.1f} s -> {daily_rows:,} daily rows, "
        f"{UsageMonthly.objects.filter(org=org).count():,} monthly rows"
    )

    print(
        f"\n1. Endpoint latency on {CostLedger.objects.filter(org=org).count():,} ledger rows "
        f"(Django test client, in process, n={args.requests})"
    )
    _http_latency(org, users[0], args.requests)

    print(
        f"\n2. reserve + settle pairs per second, {args.workers} worker processes, "
        f"{args.seconds:.0f} s each"
    )
    results = {}
    for mode, org_id, label in (
        ("baseline", org.id, "baseline: empty transaction (SELECT 1)"),
        ("baseline-writes", org.id, "baseline: 2 x (INSERT one row + COMMIT)"),
        ("budgets", org.id, "reserve+settle, org + account budgets, 1M-row org"),
        ("nobudget", quiet.id, "reserve+settle, organisation without budgets"),
        ("overrun", org.id, "reserve+settle, budgets, half the answers overrun"),
    ):
        rate, latencies = _throughput(mode, org_id, args.workers, args.seconds)
        results[mode] = rate
        print(f"  {label:52s} {rate:9.1f} /s   per iteration {fmt_ms(latencies)}")

    before = args.rows
    settled = CostLedger.objects.filter(org=org).count() - before
    held = Reservation.objects.filter(status=Reservation.Status.HELD).count()
    daily_calls = sum(UsageDaily.objects.filter(org=org).values_list("calls", flat=True))
    print(
        f"\n  check: {settled:,} new ledger rows in the budget org, {held} reservations left "
        f"held, daily aggregate calls {daily_calls:,} == ledger rows "
        f"{CostLedger.objects.filter(org=org).count():,}: "
        f"{daily_calls == CostLedger.objects.filter(org=org).count()}"
    )
    print(f"\ntotal run time {time.perf_counter() - total_started:.0f} s")
    plain = results["baseline-writes"]
    figures = {
        "bench": "billing",
        # The organisation with budgets (org + account budgets checked under their locks).
        "pairs_per_s": round(results["budgets"], 1),
        "plain_pairs_per_s": round(plain, 1),
        "ratio": round(results["budgets"] / plain, 3) if plain else None,
        "nobudget_pairs_per_s": round(results["nobudget"], 1),
        "nobudget_ratio": round(results["nobudget"] / plain, 3) if plain else None,
        "overrun_pairs_per_s": round(results["overrun"], 1),
        "overrun_ratio": round(results["overrun"] / plain, 3) if plain else None,
        "empty_tx_per_s": round(results["baseline"], 1),
        "workers": args.workers,
        "seconds": args.seconds,
        "rows": args.rows,
        "cores": os.cpu_count(),
        "synchronous_commit": sync_commit,
        "aggregates_exact": daily_calls == CostLedger.objects.filter(org=org).count(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
