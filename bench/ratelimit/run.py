"""Benchmark of the WeChat send rate limiter (apps.core.ratelimit) against a real Redis.

N worker processes x M accounts send "as fast as allowed" for --seconds (default 180): each
worker takes admissions for every account through the same four limits the send pipeline uses
(account per minute, account per day, organisation, global) and, when refused, waits the
limiter's retry_after (as the pipeline reschedules its task). Every admission's Redis server
timestamp (from the admission token) is collected, and the script prints:

- the maximum number of admissions in any sliding window of --window seconds per account
  (must be <= --limit),
- the achieved rate against the limit,
- limiter operations per second during the run, and in a saturation phase (all workers calling
  acquire back to back on a limit they never reach), next to the baseline: raw Redis INCR
  operations per second from the same processes against the same Redis.

    REDIS_URL=redis://127.0.0.1:6379/4 .venv/bin/python bench/ratelimit/run.py [--seconds 180]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _setup() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
    # Keys under their own prefix, so a concurrently running test suite never wipes them.
    os.environ["CACHE_KEY_PREFIX"] = "bench-ratelimit"
    import django

    django.setup()


def _limits(run_id: str, account: int, limit: int, window_ms: int):
    from apps.core.ratelimit import Limit
    from apps.core.redis import redis_key

    return [
        Limit(redis_key("rl", run_id, "acct", account, "min"), limit, window_ms),
        Limit(redis_key("rl", run_id, "acct", account, "day"), 100_000, 86_400_000),
        Limit(redis_key("rl", run_id, "org", "min"), 10_000, window_ms),
        Limit(redis_key("rl", run_id, "global", "min"), 100_000, window_ms),
    ]


def _send_worker(args) -> dict:
    run_id, worker, accounts, limit, window_ms, seconds, start_at = args
    _setup()
    from apps.core import ratelimit

    limits = {a: _limits(run_id, a, limit, window_ms) for a in range(accounts)}
    ready = {a: 0.0 for a in range(accounts)}
    admitted: dict[int, list[int]] = {a: [] for a in range(accounts)}
    ops = 0
    late = time.time() - start_at
    if late > 0:
        raise RuntimeError(f"worker {worker} started {late:.1f} s late; raise the start margin")
    while time.time() < start_at:
        time.sleep(0.001)
    end = start_at + seconds
    while True:
        now = time.monotonic()
        if time.time() >= end:
            break
        due = [a for a in range(accounts) if ready[a] <= now]
        if not due:
            time.sleep(max(0.0, min(min(ready.values()) - now, end - time.time())))
            continue
        for a in due:
            decision = ratelimit.acquire(limits[a])
            ops += 1
            if decision.allowed:
                admitted[a].append(int(decision.token.split(":", 1)[0]))
            else:
                ready[a] = time.monotonic() + decision.retry_after
    return {"worker": worker, "admitted": admitted, "ops": ops}


def _saturate_worker(args) -> dict:
    run_id, worker, seconds, mode = args
    _setup()
    from apps.core import ratelimit
    from apps.core.redis import get_redis, redis_key

    limits = _limits(f"{run_id}-sat", worker % 3, 10**9, 60_000)
    client = get_redis()
    key = redis_key("rl", run_id, "incr")
    ops = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if mode == "limiter":
            ratelimit.acquire(limits)
        else:
            client.incr(key)
        ops += 1
    return {"ops": ops}


def _max_in_window(stamps: list[int], window_us: int) -> int:
    stamps = sorted(stamps)
    best, j = 0, 0
    for i in range(len(stamps)):
        while stamps[i] - stamps[j] >= window_us:
            j += 1
        best = max(best, i - j + 1)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=180.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--accounts", type=int, default=3)
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--saturate-seconds", type=float, default=5.0)
    args = parser.parse_args()
    _setup()
    from django.conf import settings

    run_id = uuid.uuid4().hex[:8]
    window_ms = int(args.window * 1000)
    ctx = mp.get_context("spawn")
    print(f"Redis: {settings.REDIS_URL}")
    print(
        f"{args.workers} worker processes x {args.accounts} accounts, limit {args.limit} per "
        f"{args.window:g} s, running {args.seconds:g} s ..."
    )
    start_at = time.time() + 20.0  # let every spawned process finish importing Django first
    with ctx.Pool(args.workers) as pool:
        results = pool.map(
            _send_worker,
            [
                (run_id, w, args.accounts, args.limit, window_ms, args.seconds, start_at)
                for w in range(args.workers)
            ],
        )
    per_account: dict[int, list[int]] = {a: [] for a in range(args.accounts)}
    for result in results:
        for a, stamps in result["admitted"].items():
            per_account[int(a)].extend(stamps)
    total_ops = sum(r["ops"] for r in results)
    ok = True
    print("\nper account (admissions collected across all workers):")
    for a, stamps in per_account.items():
        worst = _max_in_window(stamps, window_ms * 1000)
        span = (max(stamps) - min(stamps)) / 1e6 if len(stamps) > 1 else 0.0
        rate = len(stamps) / args.seconds * args.window
        ok &= worst <= args.limit
        print(
            f"  account {a}: {len(stamps)} sends, max {worst} in any {args.window:g} s window "
            f"(limit {args.limit}) {'OK' if worst <= args.limit else 'EXCEEDED'}; "
            f"achieved {rate:.1f} per {args.window:g} s over the run "
            f"({rate / args.limit * 100:.1f}% of the limit; first-to-last {span:.1f} s)"
        )
    print(
        f"\nlimiter ops during the run: {total_ops} ({total_ops / args.seconds:.1f} ops/s, "
        "paced by retry_after)"
    )

    with ctx.Pool(args.workers) as pool:
        lim = pool.map(
            _saturate_worker,
            [(run_id, w, args.saturate_seconds, "limiter") for w in range(args.workers)],
        )
        raw = pool.map(
            _saturate_worker,
            [(run_id, w, args.saturate_seconds, "incr") for w in range(args.workers)],
        )
    lim_rate = sum(r["ops"] for r in lim) / args.saturate_seconds
    raw_rate = sum(r["ops"] for r in raw) / args.saturate_seconds
    print(f"saturation, {args.workers} processes x {args.saturate_seconds:g} s:")
    print(f"  limiter acquire (4 limits, 1 Lua call): {lim_rate:,.0f} ops/s")
    print(f"  baseline raw Redis INCR:               {raw_rate:,.0f} ops/s")
    print(f"  limiter / baseline: {lim_rate / raw_rate:.2f}")

    from apps.core.redis import get_redis, redis_key

    client = get_redis()
    for key in client.scan_iter(match=redis_key("rl", f"{run_id}*"), count=1000):
        client.delete(key)
    print("\nRESULT:", "PASS (no window exceeded the limit)" if ok else "FAIL")
    worst = max((_max_in_window(s, window_ms * 1000) for s in per_account.values()), default=0)
    print(
        json.dumps(
            {
                "bench": "ratelimit",
                "limit": args.limit,
                "window_s": args.window,
                "max_in_window": worst,
                "ok": ok,
                "limiter_ops_per_s": round(lim_rate, 1),
                "raw_incr_ops_per_s": round(raw_rate, 1),
                "ratio": round(lim_rate / raw_rate, 3) if raw_rate else None,
                "workers": args.workers,
                "cores": os.cpu_count(),
            }
        )
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
