"""Where one message's CPU goes: N customer messages through the whole core loop in ONE process
(Celery eager: webhook POST → processing → AI turn → outbound pipeline → GeWe simulator), under
cProfile, on PostgreSQL and Redis, with the OpenAI and GeWe simulators (instant).

It prints, per message: wall time, SQL statements, Redis commands, and the functions with the
most cumulative and own time. Baseline in the same run: the webhook POST alone with the worker
side switched off (events stored, tasks not run), so the loop's own cost shows next to the
framework's. Ends with one JSON line.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/e2e/profile_loop.py [--messages 200] [--top 30]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core_loop_common as common  # noqa: E402


class Counting:
    """Counts SQL statements (a connection execute wrapper) and Redis commands."""

    def __init__(self) -> None:
        self.sql = 0
        self.redis = 0

    def sql_wrapper(self, execute, sql, params, many, context):
        self.sql += 1
        return execute(sql, params, many, context)


def _patch_redis(counter: Counting) -> None:
    import redis

    original = redis.Redis.execute_command
    original_pipeline = redis.client.Pipeline.execute

    def execute_command(self, *args, **options):
        counter.redis += 1
        return original(self, *args, **options)

    def pipeline_execute(self, *args, **kwargs):
        counter.redis += 1  # One round trip for the whole pipeline.
        return original_pipeline(self, *args, **kwargs)

    redis.Redis.execute_command = execute_command
    redis.client.Pipeline.execute = pipeline_execute


def _backend_cpu(connection) -> float:
    """CPU seconds of this connection's PostgreSQL backend process so far (a local server)."""
    import os

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--dump", help="also write the raw profile to this file (pstats)")
    parser.add_argument(
        "--no-profile", action="store_true", help="time only (cProfile roughly doubles the CPU)"
    )
    args = parser.parse_args()

    url = common.bench_database_url("bench_profile")
    common.recreate_database(url)
    from run import LOOP_ENV

    env = common.env_for(url, CELERY_EAGER="1", **LOOP_ENV)
    common.migrate(env)
    common.setup_django(env)

    from django.db import connection
    from django.test import Client
    from run import CONVERSATIONS, Org, TimedList

    from apps.integrations import simulation

    sims = simulation.start(host="127.0.0.1", only=["gewe", "openai"])
    try:
        org = Org("profile", sims["gewe"], sims.urls["gewe"], sims.urls["openai"])
        sims["gewe"].sent = TimedList()
        client = Client()
        counter = Counting()
        _patch_redis(counter)

        def post(index: int, label: str) -> None:
            path, body, _key = org.message(f"Q{label}Q{index:05d}", index)
            response = client.post(path, body, content_type="application/json")
            assert response.status_code == 200, response.status_code

        # Warm-up: every conversation exists, caches are filled (not measured).
        for i in range(CONVERSATIONS):
            post(i, "W")
        warm_sent = len(sims["gewe"].sent)

        profiler = cProfile.Profile()
        counter.sql = counter.redis = 0
        started = time.perf_counter()
        cpu_started = time.process_time()
        backend = _backend_cpu(connection)
        with connection.execute_wrapper(counter.sql_wrapper):
            if not args.no_profile:
                profiler.enable()
            for i in range(args.messages):
                post(i, "M")
            profiler.disable()
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
        backend = _backend_cpu(connection) - backend
        sent = len(sims["gewe"].sent) - warm_sent
        sql_per, redis_per = counter.sql / args.messages, counter.redis / args.messages

        # Baseline: the POST alone (events stored and acknowledged; the tasks not run).
        from config.celery import app as celery_app

        celery_app.conf.task_always_eager = False
        celery_app.conf.broker_url = env["REDIS_URL"]
        base_started = time.perf_counter()
        for i in range(args.messages):
            post(i, "B")
        base_wall = time.perf_counter() - base_started
        celery_app.control.purge()
    finally:
        sims.stop()

    per = args.messages
    if args.dump:
        profiler.dump_stats(args.dump)
    print(f"{per} messages, {sent} replies sent (warm-up replies {warm_sent})")
    print(
        f"per message: wall {wall / per * 1000:.1f} ms, CPU of this process "
        f"{cpu / per * 1000:.1f} ms, its PostgreSQL backend {backend / per * 1000:.1f} ms, "
        f"SQL statements {sql_per:.1f}, Redis round trips "
        f"{redis_per:.1f}; baseline webhook POST alone {base_wall / per * 1000:.1f} ms"
    )
    for sort in () if args.no_profile else ("cumulative", "tottime"):
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.strip_dirs().sort_stats(sort).print_stats(args.top)
        print(f"--- top {args.top} by {sort} (totals over {per} messages) ---")
        print(out.getvalue().split("\n", 6)[-1])
    print(
        json.dumps(
            {
                "bench": "e2e_profile",
                "messages": per,
                "replies": sent,
                "wall_ms_per_message": round(wall / per * 1000, 2),
                "cpu_ms_per_message": round(cpu / per * 1000, 2),
                "postgres_backend_cpu_ms_per_message": round(backend / per * 1000, 2),
                "profiled": not args.no_profile,
                "sql_per_message": round(sql_per, 1),
                "redis_per_message": round(redis_per, 1),
                "baseline_post_ms": round(base_wall / per * 1000, 2),
            }
        )
    )


if __name__ == "__main__":
    main()
