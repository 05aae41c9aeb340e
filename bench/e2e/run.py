"""The whole core loop under load: 1,000 customer messages POSTed as GeWe webhooks to Daphne,
processed by Celery workers (not eager) on PostgreSQL and Redis, answered by the OpenAI
simulator (instant) and sent through the outbound pipeline (human-like delay 0) to the GeWe
simulator. Measured per message: from just before the webhook POST to the moment the GeWe
simulator accepted the reply (p50 / p99 / max), plus messages answered twice or never.

Baseline in the same run: the webhook POST alone (its own p50/p99), so the queueing and
processing share of the end-to-end time is visible.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/6 \
        .venv/bin/python bench/e2e/run.py [--messages 1000 --customers 100 --rate 20 --workers 2]

It creates (drops first) the database ``bench_e2e`` on that server. Goal: p99 < 500 ms.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import core_loop_common as common  # noqa: E402


class TimedList(list):
    """The simulator's ``sent`` list, stamping each accepted send."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item) -> None:
        self.times.append(time.perf_counter())
        super().append(item)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--customers", type=int, default=100)
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    url = common.bench_database_url("bench_e2e")
    common.recreate_database(url)
    env = common.env_for(
        url,
        DB_CONN_MAX_AGE="600",
        WECHAT_SEND_DELAY_SCALE="0",
        CONVERSATION_MERGE_WINDOW_SECONDS="0",
        WECHAT_SEND_ORG_LIMIT_PER_MINUTE="1000000",
        WECHAT_SEND_GLOBAL_LIMIT_PER_MINUTE="1000000",
    )
    common.migrate(env)
    common.setup_django(env)

    from apps.integrations import simulation
    from apps.integrations.models import AIApp, PlatformConnection
    from apps.orgs.models import Organization
    from apps.wechat_accounts import services as wechat
    from config.celery import app as celery_app

    celery_app.control.purge()
    sims = simulation.start(host="127.0.0.1", only=["gewe", "openai"])
    gewe = sims["gewe"]
    processes = []
    try:
        org = Organization.objects.create(name="Bench", slug="bench")
        connection = PlatformConnection.objects.create(
            org=org,
            provider="gewe",
            name="gewe",
            base_url=sims.urls["gewe"],
            token=simulation.DEMO_GEWE_TOKEN,
        )
        AIApp.objects.create(
            org=org,
            provider="openai",
            name="ai",
            base_url=sims.urls["openai"],
            api_key=simulation.DEMO_OPENAI_KEY,
            model="qwen-plus",
            is_default=True,
        )
        account = wechat.account_create(
            org=org,
            connection=connection,
            name="Sales",
            delay_min_seconds=0,
            delay_max_seconds=0,
            send_limit_per_minute=1_000_000,
            send_limit_per_day=10_000_000,
        )
        wechat.account_login_start(org=org, account_id=account.pk)
        account.refresh_from_db()
        gewe.confirm_login(account.device_id)
        wechat.account_login_status(org=org, account_id=account.pk)
        account.refresh_from_db()
        assert account.status == "online", account.status
        gewe.sent = TimedList()

        daphne, port = common.start_daphne(env)
        processes.append(daphne)
        for i in range(args.workers):
            processes.append(common.start_worker(env, f"e2e{i}"))
        time.sleep(3)

        path = connection.webhook_path
        posted: dict[str, float] = {}
        post_latency: list[float] = []
        lock = threading.Lock()
        start = time.perf_counter() + 0.2
        index = [0]

        def sender() -> None:
            poster = common.Poster(port)
            while True:
                with lock:
                    i = index[0]
                    index[0] += 1
                if i >= args.messages:
                    return
                text = f"q{i:05d}"
                payload = gewe.build_text(
                    from_wxid=f"wxid_bench{i % args.customers:04d}",
                    text=text,
                    to_account=account.device_id,
                )
                body = json.dumps(payload, ensure_ascii=False).encode()
                delay = start + i / args.rate - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.perf_counter()
                with lock:
                    posted[text] = t0
                status = poster.post(path, body)
                with lock:
                    post_latency.append(time.perf_counter() - t0)
                if status != 200:
                    print("POST failed", status, file=sys.stderr)

        threads = [threading.Thread(target=sender) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        deadline = time.perf_counter() + args.timeout
        while len(gewe.sent) < args.messages and time.perf_counter() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)
        sent, times = list(gewe.sent), list(gewe.sent.times)
    finally:
        common.stop(*processes)
        sims.stop()
        celery_app.control.purge()

    latencies, seen, duplicates = [], set(), 0
    for record, at in zip(sent, times, strict=False):
        text = record["body"].get("content", "").removeprefix("echo: ")
        if text in seen:
            duplicates += 1
            continue
        seen.add(text)
        if text in posted:
            latencies.append(at - posted[text])
    missing = args.messages - len(seen)
    elapsed = (max(times) - min(posted.values())) if times else 0.0
    print(
        f"{args.messages} messages from {args.customers} customers at {args.rate:.0f}/s, "
        f"Daphne + {args.workers} Celery workers, PostgreSQL, Redis"
    )
    print(
        f"webhook POST alone (baseline):     "
        f"p50 {common.percentile(post_latency, 50) * 1000:7.1f} ms"
        f"   p99 {common.percentile(post_latency, 99) * 1000:7.1f} ms"
    )
    print(
        f"webhook -> reply accepted (e2e):    "
        f"p50 {common.percentile(latencies, 50) * 1000:7.1f} ms"
        f"   p99 {common.percentile(latencies, 99) * 1000:7.1f} ms"
        f"   max {max(latencies, default=0) * 1000:7.1f} ms   (goal p99 < 500 ms)"
    )
    print(
        f"answered {len(seen)}, never answered {missing}, answered twice {duplicates}, "
        f"throughput {len(seen) / elapsed if elapsed else 0:.1f} replies/s"
    )


if __name__ == "__main__":
    main()
