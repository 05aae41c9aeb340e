"""Webhook ingestion throughput and latency through Daphne against PostgreSQL, next to a bare
Django JSON endpoint served by the same Daphne process in the same run.

Each webhook POST carries a unique NewMsgId (a real GeWe AddMsg body), so every request stores a
``WebhookEvent`` row and enqueues its processing task on the Redis broker (no worker runs: this
measures ingestion only; the queue is purged at the end). Steps:

1. closed loop (``--clients`` connections back to back, ``--seconds``) on the bare endpoint and
   on the webhook: max requests/s, p50/p99; the ratio webhook/bare;
2. open loop at half of the webhook's max rate: p50/p99 (the goal: p99 < 50 ms).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/6 \
        .venv/bin/python bench/ingest/run.py [--clients 8 --seconds 10]

It creates (drops first) the database ``bench_ingest`` on that server.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core_loop_common as common  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()

    url = common.bench_database_url("bench_ingest")
    common.recreate_database(url)
    env = common.env_for(url, BENCH_BARE_ENDPOINT="1", DB_CONN_MAX_AGE="600")
    common.migrate(env)
    common.setup_django(env)

    from apps.integrations.models import PlatformConnection
    from apps.integrations.simulators.gewe import build_add_msg
    from apps.orgs.models import Organization
    from apps.wechat_accounts.models import WeChatAccount
    from config.celery import app as celery_app

    org = Organization.objects.create(name="Bench", slug="bench")
    connection = PlatformConnection.objects.create(
        org=org, provider="gewe", name="bench", base_url="http://127.0.0.1:9/v2/api", token="t"
    )
    WeChatAccount.objects.create(
        org=org,
        connection=connection,
        name="bench",
        device_id="wx_bench",
        wxid="wxid_me",
        status="online",
    )
    counter = itertools.count(1)

    def webhook_bodies():
        while True:
            n = next(counter)
            yield json.dumps(
                build_add_msg(
                    app_id="wx_bench",
                    account_wxid="wxid_me",
                    from_wxid=f"wxid_c{n % 500}",
                    to_wxid="wxid_me",
                    msg_type=1,
                    content=f"你好 {n}",
                    msg_id=n,
                    new_msg_id=7773749793478223190 + n,
                ),
                ensure_ascii=False,
            ).encode()

    def bare_bodies():
        return webhook_bodies()  # the same bytes: parsing cost is equal

    daphne, port = common.start_daphne(env)
    try:
        webhook = connection.webhook_path
        bare = "/api/v1/integrations/bench/bare/"
        common.closed_loop(port, bare, bare_bodies(), clients=args.clients, seconds=2)  # warm-up
        common.closed_loop(port, webhook, webhook_bodies(), clients=args.clients, seconds=2)
        base = common.closed_loop(
            port, bare, bare_bodies(), clients=args.clients, seconds=args.seconds
        )
        hook = common.closed_loop(
            port, webhook, webhook_bodies(), clients=args.clients, seconds=args.seconds
        )
        half = hook["rps"] / 2
        paced = common.open_loop(
            port, webhook, webhook_bodies(), rate=half, seconds=args.seconds, clients=args.clients
        )
    finally:
        common.stop(daphne)
        celery_app.control.purge()

    from apps.integrations.models import WebhookEvent

    stored = WebhookEvent.objects.count()

    def line(name, r):
        return (
            f"{name:<34} {r['rps']:8.1f} req/s   p50 {r['p50_ms']:6.1f} ms   "
            f"p99 {r['p99_ms']:6.1f} ms   ({r['requests']} requests, {r['errors']} errors)"
        )

    print(
        f"Daphne (1 process), PostgreSQL, {args.clients} keep-alive clients, {args.seconds:.0f} s"
    )
    print(line("bare Django JSON endpoint (max)", base))
    print(line("webhook (max)", hook))
    print(line(f"webhook at half max ({half:.0f}/s)", paced))
    ratio = hook["rps"] / base["rps"] if base["rps"] else 0.0
    print(f"ratio webhook/bare: {ratio:.2f}   (goal >= 0.5)")
    print(f"p99 at half max rate: {paced['p99_ms']:.1f} ms   (goal <= 50 ms)")
    print(f"webhook events stored: {stored}")
    print(
        json.dumps(
            {
                "bench": "ingest",
                "bare_rps": round(base["rps"], 1),
                "webhook_rps": round(hook["rps"], 1),
                "ratio": round(ratio, 3),
                "half_load_rps": round(half, 1),
                "half_load_p50_ms": round(paced["p50_ms"], 1),
                "half_load_p99_ms": round(paced["p99_ms"], 1),
                "errors": base["errors"] + hook["errors"] + paced["errors"],
                "events_stored": stored,
                "clients": args.clients,
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
