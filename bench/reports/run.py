"""Benchmark of the report endpoints against PostgreSQL.

One organisation with ``--conversations`` conversations (default 100,000) and ``--messages``
messages (default 1,000,000) over ``--days`` days (default 90): 20 WeChat accounts, 30 agents,
3 AI apps, 10 labels; every conversation has a customer/AI/agent exchange, 30 % are handed to a
person (every handoff reason) and 60 % are resolved; one AI ledger row per AI answer. Rows are
bulk-loaded with COPY into a database the script creates (drops first), ``bench_reports`` on
the server of DATABASE_URL.

Then it measures:

1. ``reports_rebuild`` of the whole range (the derived tables from the raw rows), and one
   day's incremental refresh (``day_refresh`` of a busy day).
2. Each report endpoint (JSON, through the whole Django/DRF stack as a manager) for the last
   30 and the last 90 days: p50/p95 over ``--repeat`` requests — next to the baseline, a plain
   ``SELECT count(*)`` of the organisation's messages timed the same way in the same run.

Ends with one JSON line of every figure.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x REDIS_URL=redis://127.0.0.1:6379/13 \\
        .venv/bin/python bench/reports/run.py [--conversations 100000 --messages 1000000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[2]
BENCH_DB = "bench_reports"
REASONS = ["keyword", "sentiment", "ai_failed", "budget", "phone_reply", "agent", "no_ai_app"]
REPORTS = ["overview", "conversations", "agents", "accounts", "sop", "cost"]


def _bench_url(url: str) -> str:
    return urlunparse(urlparse(url)._replace(path=f"/{BENCH_DB}"))


def _create_database(url: str) -> None:
    import psycopg

    admin = urlunparse(urlparse(url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{BENCH_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{BENCH_DB}"')


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    os.environ["CACHE_KEY_PREFIX"] = "bench-reports"
    os.environ["CHANNELS_PREFIX"] = "bench-reports"
    import django

    django.setup()


def _columns(model, given: set[str]):
    """Every concrete column of ``model`` but ``id`` (unless given), with its default."""
    cols = []
    for field in model._meta.concrete_fields:
        if field.primary_key and "id" not in given:
            continue
        default = None
        if field.attname not in given:
            if field.has_default():
                default = field.get_default()
            elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
                default = dt.datetime.now(dt.UTC)
            elif field.null:
                default = None
            elif field.get_internal_type() in ("CharField", "TextField"):
                default = ""
        if isinstance(default, dict | list):
            default = json.dumps(default)
        cols.append((field.column, field.attname, default))
    return cols


def _copy(model, rows, given: set[str]) -> int:
    """COPY an iterable of dicts (attname -> value) into ``model``'s table."""
    from django.db import connection

    cols = _columns(model, given)
    names = ", ".join(f'"{c}"' for c, _a, _d in cols)
    count = 0
    with connection.cursor() as cursor:
        raw = cursor.cursor
        with raw.copy(f'COPY "{model._meta.db_table}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(
                    [
                        (json.dumps(v) if isinstance(v, dict | list) else v)
                        for v in (row.get(a, d) for _c, a, d in cols)
                    ]
                )
                count += 1
    return count


def _reset_sequence(model) -> None:
    from django.db import connection

    table = model._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "
            f'(SELECT max(id) FROM "{table}"))'
        )


def build(args) -> dict:
    """Load the organisation; returns ids and counts."""
    from apps.billing.models import CostLedger
    from apps.conversations.models import Conversation, Label, Message
    from apps.integrations.models import AIApp, PlatformConnection
    from apps.orgs.models import Membership, Organization, Role
    from apps.reports.models import ConversationEvent
    from apps.wechat_accounts.models import Contact, WeChatAccount
    from tests.accounts.factories import UserFactory

    rng = random.Random(21)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    begin = now - dt.timedelta(days=args.days)
    org = Organization.objects.create(name="Bench Sales", slug="bench", timezone="Asia/Shanghai")
    manager = UserFactory(name="Bench Manager")
    Membership.objects.create(org=org, user=manager, role=Role.MANAGER)
    agents = []
    for i in range(30):
        user = UserFactory(name=f"Agent {i:02d}")
        Membership.objects.create(org=org, user=user, role=Role.AGENT)
        agents.append(user.pk)
    apps = [
        AIApp.objects.create(
            org=org, provider=AIApp.Provider.OPENAI, name=f"App {i}", base_url="http://x/v1"
        ).pk
        for i in range(3)
    ]
    connection = PlatformConnection.objects.create(
        org=org, provider=PlatformConnection.Provider.GEWE, name="GeWe", base_url="http://x"
    )
    accounts = [
        WeChatAccount.objects.create(
            org=org,
            connection=connection,
            name=f"Phone {i:02d}",
            default_ai_app_id=apps[i % 3],
            owner_id=agents[i % len(agents)],
        ).pk
        for i in range(20)
    ]
    labels = [Label.objects.create(org=org, name=f"Label {i}").pk for i in range(10)]

    n = args.conversations
    per = max(2, args.messages // n)
    stamp = dt.datetime.now(dt.UTC)
    t = time.perf_counter()
    _copy(
        Contact,
        (
            {
                "id": i + 1,
                "org_id": org.pk,
                "account_id": accounts[i % 20],
                "wxid": f"wxid_{i:07d}",
                "nickname": f"Customer {i}",
                "created_at": stamp,
                "updated_at": stamp,
            }
            for i in range(n)
        ),
        {"id", "org_id", "account_id", "wxid", "nickname", "created_at", "updated_at"},
    )
    _reset_sequence(Contact)
    plans = []  # per conversation: (start, assignee, handoff, resolved)
    for _i in range(n):
        start = begin + dt.timedelta(seconds=rng.uniform(0, args.days * 86400 - 7200))
        handoff = rng.random() < 0.3
        plans.append(
            (
                start,
                rng.choice(agents) if handoff or rng.random() < 0.2 else None,
                rng.choice(REASONS) if handoff else None,
                rng.random() < 0.6,
            )
        )
    _copy(
        Conversation,
        (
            {
                "id": i + 1,
                "org_id": org.pk,
                "account_id": accounts[i % 20],
                "contact_id": i + 1,
                "assignee_id": plans[i][1],
                "status": "resolved" if plans[i][3] else ("pending" if plans[i][2] else "open"),
                "mode": "human" if plans[i][2] else "ai",
                "last_message_at": plans[i][0],
                "created_at": plans[i][0],
                "updated_at": plans[i][0],
            }
            for i in range(n)
        ),
        {
            "id",
            "org_id",
            "account_id",
            "contact_id",
            "assignee_id",
            "status",
            "mode",
            "last_message_at",
            "created_at",
            "updated_at",
        },
    )
    _reset_sequence(Conversation)
    through = Conversation.labels.through
    _copy(
        through,
        ({"conversation_id": i + 1, "label_id": labels[i % 10]} for i in range(n) if i % 5 == 0),
        {"conversation_id", "label_id"},
    )
    events, ledger = [], []

    def messages():
        for i, (start, assignee, reason, resolved) in enumerate(plans):
            cid = i + 1
            at = start
            human_from = per // 2 if reason else per
            for k in range(per):
                customer = k % 2 == 0
                if k == human_from and reason:
                    events.append((cid, "handoff", reason, at + dt.timedelta(seconds=1)))
                    at += dt.timedelta(seconds=rng.expovariate(1 / 300))
                else:
                    at += dt.timedelta(seconds=rng.uniform(2, 60))
                if customer:
                    kind, user = "customer", None
                elif k > human_from:
                    kind, user = "agent", assignee
                else:
                    kind, user = "ai", None
                if kind == "ai":
                    ledger.append((cid, accounts[i % 20], at))
                yield {
                    "org_id": org.pk,
                    "conversation_id": cid,
                    "account_id": accounts[i % 20],
                    "direction": "inbound" if customer else "outbound",
                    "sender_kind": kind,
                    "sender_user_id": user,
                    "status": "received" if customer else "sent",
                    "text": "hello",
                    "created_at": at,
                    "updated_at": at,
                }
            if resolved:
                events.append((cid, "resolved", "", at + dt.timedelta(seconds=60)))

    count = _copy(
        Message,
        messages(),
        {
            "org_id",
            "conversation_id",
            "account_id",
            "direction",
            "sender_kind",
            "sender_user_id",
            "status",
            "text",
            "created_at",
            "updated_at",
        },
    )
    _copy(
        ConversationEvent,
        (
            {
                "org_id": org.pk,
                "conversation_id": c,
                "kind": k,
                "reason": r,
                "at": a,
                "created_at": a,
                "updated_at": a,
            }
            for c, k, r, a in events
        ),
        {"org_id", "conversation_id", "kind", "reason", "at", "created_at", "updated_at"},
    )
    _copy(
        CostLedger,
        (
            {
                "org_id": org.pk,
                "request_id": f"ai-{j}",
                "conversation_id": c,
                "wechat_account_id": a,
                "provider": "openai",
                "model": "qwen-plus",
                "kind": "chat",
                "cost": Decimal("0.0021"),
                "created_at": at,
            }
            for j, (c, a, at) in enumerate(ledger)
        ),
        {
            "org_id",
            "request_id",
            "conversation_id",
            "wechat_account_id",
            "provider",
            "model",
            "kind",
            "cost",
            "created_at",
        },
    )
    from django.db import connection as db

    with db.cursor() as cursor:
        cursor.execute("ANALYZE")
    return {
        "org": org,
        "manager": manager,
        "agent": agents[0],
        "messages": count,
        "conversations": n,
        "events": len(events),
        "ledger_rows": len(ledger),
        "load_s": round(time.perf_counter() - t, 1),
    }


def _timed(fn, repeat: int) -> dict:
    fn()  # warm-up (connection, caches of the query plans)
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    p95 = samples[min(len(samples) - 1, int(round(0.95 * (len(samples) - 1))))]
    return {"p50_ms": round(statistics.median(samples), 1), "p95_ms": round(p95, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the endpoints on the database a previous run left (no load, no rebuild)",
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL server (the script creates bench_reports).")
    if not args.reuse:
        _create_database(url)
    os.environ["DATABASE_URL"] = _bench_url(url)
    _setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from django.test.utils import setup_test_environment
    from rest_framework.test import APIClient

    from apps.reports import services

    settings.REPORTS_CACHE_SECONDS = 0  # cold: every request computes its report
    setup_test_environment()
    call_command("migrate", verbosity=0)
    if args.reuse:
        from apps.conversations.models import Conversation, Message
        from apps.orgs.models import Membership, Organization

        org = Organization.objects.get(slug="bench")
        data = {
            "org": org,
            "manager": Membership.objects.filter(org=org, role="manager").first().user,
            "messages": Message.objects.filter(org=org).count(),
            "conversations": Conversation.objects.filter(org=org).count(),
            "load_s": None,
        }
        rebuilt, rebuild_s = {"rows": None}, None
    else:
        data = build(args)
        org = data["org"]
        print(
            f"loaded {data['conversations']:,} conversations, {data['messages']:,} messages, "
            f"{data['events']:,} events, {data['ledger_rows']:,} ledger rows in "
            f"{data['load_s']} s"
        )
    today = services.local_day(org, dt.datetime.now(dt.UTC))
    if not args.reuse:
        t = time.perf_counter()
        rebuilt = services.range_rebuild(
            org=org, start=today - dt.timedelta(days=args.days), end=today
        )
        rebuild_s = round(time.perf_counter() - t, 1)
        print(
            f"reports_rebuild of {rebuilt['days']} days: {rebuild_s} s ({rebuilt['rows']:,} rows)"
        )
    busy = today - dt.timedelta(days=args.days // 2)
    day = _timed(lambda: services.day_refresh(org=org, day=busy), 5)
    print(f"one day's refresh (day_refresh): p50 {day['p50_ms']} ms")
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    def count():
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM conversations_message WHERE org_id = %s", [org.pk])
            cursor.fetchone()

    baseline = _timed(count, args.repeat)
    print(
        f"baseline count(*) of the org's messages: p50 {baseline['p50_ms']} ms, "
        f"p95 {baseline['p95_ms']} ms"
    )
    client = APIClient()
    client.force_authenticate(user=data["manager"])
    client.credentials(HTTP_X_ORGANIZATION=org.slug)
    endpoints = {}
    for span in (30, 90):
        params = {"start": str(today - dt.timedelta(days=span - 1)), "end": str(today)}
        for name in REPORTS:

            def call(name=name, params=params):
                response = client.get(f"/api/v1/reports/{name}/", params)
                assert response.status_code == 200, response.content[:300]

            endpoints[f"{name}_{span}d"] = _timed(call, args.repeat)
            r = endpoints[f"{name}_{span}d"]
            print(f"{name:>14} {span:>2} days: p50 {r['p50_ms']:>7} ms  p95 {r['p95_ms']:>7} ms")
    # The same 90-day requests with the result cache on (what a page reload or the dashboard's
    # live re-render costs until the next refresh changes the figures).
    settings.REPORTS_CACHE_SECONDS = 3600
    cached = {}
    params = {"start": str(today - dt.timedelta(days=89)), "end": str(today)}
    for name in REPORTS:

        def call_cached(name=name):
            response = client.get(f"/api/v1/reports/{name}/", params)
            assert response.status_code == 200

        cached[f"{name}_90d"] = _timed(call_cached, args.repeat)
        r = cached[f"{name}_90d"]
        print(f"{name:>14} 90 days, cached: p50 {r['p50_ms']:>7} ms  p95 {r['p95_ms']:>7} ms")
    worst90 = max(v["p95_ms"] for k, v in endpoints.items() if k.endswith("_90d"))
    print(f"worst p95 for 90 days: {worst90} ms (goal <= 300 ms)")
    print(
        json.dumps(
            {
                "bench": "reports",
                "conversations": data["conversations"],
                "messages": data["messages"],
                "days": args.days,
                "load_s": data["load_s"],
                "rebuild_s": rebuild_s,
                "rebuild_rows": rebuilt["rows"],
                "day_refresh_ms": day["p50_ms"],
                "baseline_count": baseline,
                "endpoints": endpoints,
                "endpoints_cached_90d": cached,
                "worst_p95_90d_ms": worst90,
            }
        )
    )


if __name__ == "__main__":
    main()
