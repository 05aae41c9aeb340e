"""Benchmark of SOP scheduling against PostgreSQL: a plan over 10,000 contacts on 20 accounts
with 3 steps.

It creates (drops first) its own database ``bench_sop`` on the server of DATABASE_URL, migrates
it, logs 20 accounts in at an in-process GeWe simulator (instant answers), bulk-creates the
contacts, and measures, each next to a baseline taken in the same run:

1. Activation of a once plan: enrol every contact and schedule 30,000 deliveries —
   baseline: a plain ``bulk_create`` of 30,000 delivery rows (no targeting, no enrolment).
2. The tick's claim with 30,000 due rows: deliveries claimed per second in batches of
   ``--batch`` (``SELECT ... FOR UPDATE SKIP LOCKED`` + conditional update) — baseline: the same
   batches as a bare ``UPDATE ... WHERE id IN (...)`` by primary key.
3. Sends per second through the outbound pipeline (tick -> ``send`` -> delivery task ->
   simulator -> sent), limits set high, human-like delay off, Celery eager (one process) —
   baseline: the same number of direct ``apps.conversations.outbound.send`` calls.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/x REDIS_URL=redis://127.0.0.1:6379/7 \\
        .venv/bin/python bench/sop/run.py   [--contacts 10000 --accounts 20 --sends 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[2]
BENCH_DB = "bench_sop"


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
    os.environ["CACHE_KEY_PREFIX"] = "bench-sop"
    os.environ["CHANNELS_PREFIX"] = "bench-sop"
    import django

    django.setup()
    from django.conf import settings

    settings.WECHAT_SEND_DELAY_SCALE = 0
    settings.WECHAT_SEND_ORG_LIMIT_PER_MINUTE = 10**7
    settings.WECHAT_SEND_GLOBAL_LIMIT_PER_MINUTE = 10**7


def _accounts(org, sim, n: int):
    from apps.integrations import simulation
    from apps.integrations.models import PlatformConnection
    from apps.wechat_accounts import services as wechat
    from apps.wechat_accounts.models import WeChatAccount

    gewe = sim["gewe"]
    accounts = []
    for i in range(n):
        connection = PlatformConnection.objects.create(
            org=org,
            provider=PlatformConnection.Provider.GEWE,
            name=f"GeWe {i}",
            base_url=sim.urls["gewe"],
            token=simulation.DEMO_GEWE_TOKEN,
        )
        account = wechat.account_create(
            org=org,
            connection=connection,
            name=f"Sales {i:02d}",
            delay_min_seconds=0,
            delay_max_seconds=0,
            send_limit_per_minute=10**6,
            send_limit_per_day=10**6,
        )
        wechat.account_login_start(org=org, account_id=account.pk)
        account.refresh_from_db()
        gewe.confirm_login(account.device_id)
        wechat.account_login_status(org=org, account_id=account.pk)
        account.refresh_from_db()
        assert account.status == WeChatAccount.Status.ONLINE, account.status
        accounts.append(account)
    return accounts


def _contacts(org, accounts, n: int) -> None:
    from apps.wechat_accounts.models import Contact

    rows = [
        Contact(
            org=org,
            account=accounts[i % len(accounts)],
            wxid=f"wxid_bench{i:06d}",
            nickname=f"Customer {i}",
            kind=Contact.Kind.FRIEND,
        )
        for i in range(n)
    ]
    Contact.objects.bulk_create(rows, batch_size=2000)


def rate(count: int, seconds: float) -> str:
    return f"{count:>7,} in {seconds:7.2f} s = {count / seconds:>10,.0f}/s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=20)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--sends", type=int, default=1000)
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL to a PostgreSQL server (the script creates bench_sop).")
    _create_database(url)
    os.environ["DATABASE_URL"] = _bench_url(url)
    _setup()
    import logging

    logging.disable(logging.WARNING)

    from django.core.management import call_command
    from django.db import connection
    from django.db.models import F
    from django.utils import timezone

    from apps.conversations import outbound
    from apps.conversations.models import Message
    from apps.integrations import simulation
    from apps.orgs.models import Organization
    from apps.sop import services
    from apps.sop.models import SopDelivery, SopEnrollment, SopPlan
    from apps.wechat_accounts.models import Contact

    print(
        f"database {connection.settings_dict['NAME']}, PostgreSQL {connection.pg_version}, "
        f"{os.cpu_count()} CPUs"
    )
    call_command("migrate", verbosity=0)
    sim = simulation.start(host="127.0.0.1")
    try:
        org = Organization.objects.create(name="Bench", slug="bench", timezone="Asia/Shanghai")
        accounts = _accounts(org, sim, args.accounts)
        _contacts(org, accounts, args.contacts)
        steps = [
            {"kind": "text", "text": "Welcome {nickname}"},
            {"kind": "text", "text": "Day 1 for {nickname}", "delay_days": 1},
            {"kind": "text", "text": "Day 3 for {nickname}", "delay_days": 3},
        ]
        plan = services.plan_create(
            org=org, accounts=accounts, steps=steps, name="Bench plan", trigger="once"
        )
        expected = args.contacts * len(steps)

        # 1. enrol + schedule -----------------------------------------------------------------
        print(f"\n1. Activate a once plan: {args.contacts:,} contacts x {len(steps)} steps")
        started = time.perf_counter()
        services.plan_activate(org=org, plan_id=plan.pk)
        activate_s = time.perf_counter() - started
        assert SopDelivery.objects.filter(plan=plan).count() == expected
        baseline_plan = services.plan_create(
            org=org, accounts=accounts, steps=steps, name="Baseline plan", trigger="once"
        )
        base_steps = list(baseline_plan.steps.all())
        enrollments = SopEnrollment.objects.bulk_create(
            [
                SopEnrollment(
                    org=org,
                    plan=baseline_plan,
                    contact_id=cid,
                    occurrence="once",
                    enrolled_at=timezone.now(),
                )
                for cid in Contact.objects.filter(org=org).values_list("id", flat=True)
            ],
            batch_size=2000,
        )
        contact_accounts = dict(Contact.objects.filter(org=org).values_list("id", "account_id"))
        now = timezone.now()
        rows = [
            SopDelivery(
                org=org,
                plan=baseline_plan,
                enrollment=e,
                step=s,
                contact_id=e.contact_id,
                account_id=contact_accounts[e.contact_id],
                occurrence="once",
                due_at=now,
            )
            for e in enrollments
            for s in base_steps
        ]
        started = time.perf_counter()
        SopDelivery.objects.bulk_create(rows, batch_size=2000)
        bulk_s = time.perf_counter() - started
        print(f"   plan_activate (targets, enrol, schedule): {rate(expected, activate_s)}")
        print(f"   baseline bulk_create of delivery rows:    {rate(expected, bulk_s)}")
        SopDelivery.objects.filter(plan=baseline_plan).delete()
        SopEnrollment.objects.filter(plan=baseline_plan).delete()

        # 2. claims --------------------------------------------------------------------------
        SopDelivery.objects.filter(plan=plan).update(due_at=timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE sop_sopdelivery")
        print(f"\n2. Tick claim with {expected:,} due rows, batches of {args.batch}")
        started = time.perf_counter()
        claimed = 0
        batches = 0
        while True:
            _token, ids = services.claim_due(org_id=org.pk, limit=args.batch)
            if not ids:
                break
            claimed += len(ids)
            batches += 1
        claim_s = time.perf_counter() - started
        assert claimed == expected, claimed
        ids_all = list(
            SopDelivery.objects.filter(plan=plan).order_by("id").values_list("id", flat=True)
        )
        SopDelivery.objects.filter(plan=plan).update(status="scheduled", claim_token="")
        started = time.perf_counter()
        for i in range(0, len(ids_all), args.batch):
            SopDelivery.objects.filter(id__in=ids_all[i : i + args.batch]).update(
                status="processing", attempts=F("attempts") + 1
            )
        plain_s = time.perf_counter() - started
        print(f"   claim_due (SKIP LOCKED + conditional):   {rate(claimed, claim_s)}")
        print(f"   baseline UPDATE by primary key:          {rate(claimed, plain_s)}")
        first_batch = time.perf_counter()
        SopDelivery.objects.filter(plan=plan).update(status="scheduled", claim_token="", attempts=0)
        services.claim_due(org_id=org.pk, limit=args.batch)
        print(
            f"   one batch on a full table (incl. reset):  "
            f"{(time.perf_counter() - first_batch) * 1000:.0f} ms"
        )

        # 3. sends through the pipeline --------------------------------------------------------
        SopDelivery.objects.filter(plan=plan).update(
            status="scheduled", claim_token="", attempts=0, due_at=timezone.now()
        )
        send_ids = list(
            SopDelivery.objects.filter(plan=plan, step__order=0)
            .order_by("id")
            .values_list("id", flat=True)[: args.sends]
        )
        future = timezone.now() + timezone.timedelta(days=30)
        SopDelivery.objects.filter(plan=plan).exclude(id__in=send_ids).update(due_at=future)
        n = len(send_ids)
        print(f"\n3. Sends through the pipeline ({n:,} deliveries, simulator instant)")
        started = time.perf_counter()
        ticks = 0
        while True:
            result = services.sop_tick(org_id=org.pk, limit=args.batch)
            ticks += 1
            if result.claimed == 0:
                break
        sop_s = time.perf_counter() - started
        sent = Message.objects.filter(org=org, sender_kind="sop", status="sent").count()
        services.sop_tick(org_id=org.pk)
        sop_sent = SopDelivery.objects.filter(plan=plan, status="sent").count()
        assert sent == n and sop_sent == n, (sent, sop_sent, n)
        simulation_contacts = list(
            Contact.objects.filter(org=org).select_related("account").order_by("-id")[:n]
        )
        started = time.perf_counter()
        for contact in simulation_contacts:
            outbound.send(
                org=org,
                account=contact.account,
                to_wxid=contact.wxid,
                kind="text",
                text=f"direct {contact.nickname}",
            )
        direct_s = time.perf_counter() - started
        direct_sent = Message.objects.filter(org=org, text__startswith="direct ", status="sent")
        assert direct_sent.count() == n
        print(f"   SOP tick -> pipeline -> simulator:       {rate(n, sop_s)}  ({ticks} ticks)")
        print(f"   baseline direct send() -> simulator:     {rate(n, direct_s)}")
        print(
            f"   SOP overhead per delivery: {(sop_s - direct_s) / n * 1000:.2f} ms "
            "(targeting re-check, stop conditions, render, claim)"
        )
        plan.refresh_from_db()
        assert plan.status == SopPlan.Status.ACTIVE
        print(
            json.dumps(
                {
                    "bench": "sop",
                    "deliveries": expected,
                    "activate_per_s": round(expected / activate_s, 1),
                    "bulk_create_per_s": round(expected / bulk_s, 1),
                    "claim_per_s": round(claimed / claim_s, 1),
                    "plain_update_per_s": round(claimed / plain_s, 1),
                    "sends": n,
                    "pipeline_sends_per_s": round(n / sop_s, 1),
                    "direct_sends_per_s": round(n / direct_s, 1),
                    "sop_overhead_ms": round((sop_s - direct_s) / n * 1000, 2),
                    "cores": os.cpu_count(),
                }
            )
        )
    finally:
        sim.stop()


if __name__ == "__main__":
    main()
