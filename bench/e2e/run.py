"""The whole core loop under load, stepped through rates: customer messages POSTed as GeWe
webhooks to Daphne, processed by Celery workers (not eager) on PostgreSQL and Redis, answered
by the OpenAI simulator (instant) and sent through the outbound pipeline (human-like delay 0)
to the GeWe simulator, over 200 conversations.

For each step (default 5, 10, 20, 40 messages/s for 10 s each) it prints p50 / p99 / max from
just before the webhook POST to the GeWe simulator accepting the reply, lost and duplicate
replies, the replies per second, and where the time went (p50 / p99 of each stage, read from
the timestamps the loop stores: see profile.py). The saturation rate is the highest step whose
p99 stays under 1 s and whose queue drained (every reply sent within ``--drain`` seconds after
the step's last POST). A step that does not drain ends the run's stepping (higher rates only
queue more).

Baseline in the same run: the webhook POST alone (p50 / p99).

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/6 \\
        .venv/bin/python bench/e2e/run.py [--steps 5 10 20 40] [--duration 10] [--workers 1 2] \\
        [--noisy-neighbour]

``--workers 1 2`` runs the steps with one, then two solo Celery workers and prints the ratio of
their saturation rates and peak reply rates next to the machine's core count.
``--noisy-neighbour`` then runs ``--noisy-rate`` messages/s (default 10) of one organisation
alone, and again while a second organisation, whose AI provider takes 10 s a reply, sends
``--noisy-load`` messages/s (default 1): the first organisation's p99 with and without it.

It creates (drops first) the database ``bench_e2e`` on that server. Goals (issue 19): p99 <=
500 ms at 20 msg/s; saturation >= 40 msg/s with two workers; workers 2/1 >= 1.7x on four or
more cores; 0 lost and 0 duplicates; the noisy neighbour raises p99 by <= 20 %. Ends with one
JSON line of the figures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import core_loop_common as common  # noqa: E402
import cpu_sample  # noqa: E402
import stage_profile  # noqa: E402

CONVERSATIONS = 200
# The loop as every core-loop bench runs it: instant sends, no merge window, no limits in the way.
LOOP_ENV = {
    "DB_CONN_MAX_AGE": "600",
    "WECHAT_SEND_DELAY_SCALE": "0",
    "CONVERSATION_MERGE_WINDOW_SECONDS": "0",
    "WECHAT_SEND_ORG_LIMIT_PER_MINUTE": "1000000",
    "WECHAT_SEND_GLOBAL_LIMIT_PER_MINUTE": "1000000",
    "WEBHOOK_RATE_LIMIT_PER_MINUTE": "0",
}
TOKEN = re.compile(r"Q[0-9A-Za-z]+Q\d{5}")


class TimedList(list):
    """The simulator's ``sent`` list, stamping (wall clock) each accepted send."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def append(self, item) -> None:
        self.times.append(time.time())
        super().append(item)


class Replies:
    """The replies the GeWe simulator accepted: first acceptance time and count per token."""

    def __init__(self, sent: TimedList) -> None:
        self.sent = sent
        self.first: dict[str, float] = {}
        self.count: Counter = Counter()
        self._scanned = 0

    def scan(self) -> None:
        end = min(len(self.sent), len(self.sent.times))
        for record, at in zip(
            self.sent[self._scanned : end], self.sent.times[self._scanned : end], strict=True
        ):
            for token in set(TOKEN.findall(str(record["body"].get("content", "")))):
                self.count[token] += 1
                self.first.setdefault(token, at)
        self._scanned = end

    def wait(self, tokens, deadline: float) -> bool:
        """Wait until every token is answered or the deadline passes; True when all were."""
        while True:
            self.scan()
            if all(t in self.first for t in tokens):
                return True
            if time.time() >= deadline:
                return False
            time.sleep(0.1)


class Org:
    """One organisation on the simulators: a GeWe account and an AI app."""

    def __init__(self, slug: str, gewe, gewe_url: str, ai_url: str) -> None:
        from apps.integrations import simulation
        from apps.integrations.models import AIApp, PlatformConnection
        from apps.orgs.models import Organization
        from apps.wechat_accounts import services as wechat

        self.org = Organization.objects.create(name=slug.title(), slug=slug)
        self.connection = PlatformConnection.objects.create(
            org=self.org,
            provider="gewe",
            name="gewe",
            base_url=gewe_url,
            token=simulation.DEMO_GEWE_TOKEN,
        )
        AIApp.objects.create(
            org=self.org,
            provider="openai",
            name="ai",
            base_url=ai_url,
            api_key=simulation.DEMO_OPENAI_KEY,
            model="qwen-plus",
            is_default=True,
        )
        account = wechat.account_create(
            org=self.org,
            connection=self.connection,
            name="Sales",
            delay_min_seconds=0,
            delay_max_seconds=0,
            send_limit_per_minute=1_000_000,
            send_limit_per_day=10_000_000,
        )
        wechat.account_login_start(org=self.org, account_id=account.pk)
        account.refresh_from_db()
        gewe.confirm_login(account.device_id)
        wechat.account_login_status(org=self.org, account_id=account.pk)
        account.refresh_from_db()
        assert account.status == "online", account.status
        self.account = account
        self.gewe = gewe
        self.path = self.connection.webhook_path

    def message(self, token: str, index: int) -> tuple[str, bytes, str]:
        from apps.integrations.webhooks import gewe_dedupe_key

        payload = self.gewe.build_text(
            from_wxid=f"wxid_{self.org.slug}{index % CONVERSATIONS:04d}",
            text=token,
            to_account=self.account.device_id,
        )
        return self.path, json.dumps(payload, ensure_ascii=False).encode(), gewe_dedupe_key(payload)


class Load:
    """Messages POSTed at their due times over persistent connections (wall clock)."""

    def __init__(self) -> None:
        self.posted: dict[str, float] = {}
        self.dedupe_keys: dict[str, str] = {}
        self.post_latency: list[float] = []
        self.failed = 0

    def run(self, port: int, schedule: list[tuple[float, str, str, bytes, str]]) -> None:
        """``schedule``: (offset seconds, token, path, body, dedupe key), sorted by offset."""
        lock = threading.Lock()
        start = time.time() + 0.2
        cursor = [0]

        def sender() -> None:
            poster = common.Poster(port)
            while True:
                with lock:
                    if cursor[0] >= len(schedule):
                        return
                    offset, token, path, body, key = schedule[cursor[0]]
                    cursor[0] += 1
                delay = start + offset - time.time()
                if delay > 0:
                    time.sleep(delay)
                t0 = time.time()
                with lock:
                    self.posted[token] = t0
                    self.dedupe_keys[token] = key
                status = poster.post(path, body)
                with lock:
                    self.post_latency.append(time.time() - t0)
                    if status != 200:
                        self.failed += 1

        threads = [threading.Thread(target=sender) for _ in range(24)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def schedule_for(org: Org, label: str, rate: float, seconds: float) -> list[tuple]:
    rows = []
    for i in range(max(1, int(rate * seconds))):
        token = f"Q{label}Q{i:05d}"
        rows.append((i / rate, token, *org.message(token, i)))
    return rows


def _ms(seconds: float) -> float | None:
    """Milliseconds for the JSON line (None, not NaN, when nothing was measured)."""
    return None if math.isnan(seconds) else round(seconds * 1000, 1)


def _f(value: float | None, width: int = 8) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.1f}"


def latency_summary(tokens, load: Load, replies: Replies) -> dict:
    latencies = [replies.first[t] - load.posted[t] for t in tokens if t in replies.first]
    answered = [t for t in tokens if t in replies.first]
    span = (max(replies.first[t] for t in answered) - min(load.posted.values())) if answered else 0
    return {
        "messages": len(tokens),
        "p50_ms": _ms(common.percentile(latencies, 50)),
        "p99_ms": _ms(common.percentile(latencies, 99)),
        "max_ms": _ms(max(latencies, default=float("nan"))),
        "lost": len(tokens) - len(answered),
        "duplicates": sum(replies.count[t] - 1 for t in answered),
        "replies_per_s": round(len(answered) / span, 1) if span else 0.0,
    }


def stages_summary(samples: dict[str, list[float]]) -> dict:
    return {
        stage: {
            "p50_ms": _ms(common.percentile(values, 50)),
            "p99_ms": _ms(common.percentile(values, 99)),
        }
        for stage in (*stage_profile.STAGES, *stage_profile.DETAILS)
        if (values := samples.get(stage))
    }


def run_step(port, org, replies, *, label, rate, seconds, drain, timeout) -> dict:
    load = Load()
    schedule = schedule_for(org, label, rate, seconds)
    tokens = [row[1] for row in schedule]
    cpu_before = cpu_sample.sample()
    load.run(port, schedule)
    drained = replies.wait(tokens, time.time() + drain)
    cpu_spent = cpu_sample.between(cpu_before, cpu_sample.sample())
    if not drained:
        replies.wait(tokens, time.time() + timeout)  # how many are lost, not just late
    time.sleep(0.5)  # a duplicate comes late
    replies.scan()
    step = {"rate": rate, **latency_summary(tokens, load, replies), "drained": drained}
    step["post_p50_ms"] = _ms(common.percentile(load.post_latency, 50))
    step["post_p99_ms"] = _ms(common.percentile(load.post_latency, 99))
    step["post_failed"] = load.failed
    samples = stage_profile.stage_samples(load.posted, load.dedupe_keys, replies.first)
    step["stages"] = stages_summary(samples)
    step["profile"] = stage_profile.bottleneck(samples)
    # The machine's CPU per message by role, POSTs to the last reply (anything else running on
    # the machine counts as "other").
    step["cpu_ms_per_message"] = cpu_sample.per_message_ms(cpu_spent, len(tokens))
    return step


def saturation(steps: list[dict]) -> float | None:
    ok = [
        s["rate"]
        for s in steps
        if s["drained"] and s["p99_ms"] is not None and s["p99_ms"] < 1000 and not s["lost"]
    ]
    return max(ok) if ok else None


def print_step(step: dict) -> None:
    print(
        f"  {step['rate']:5.0f} msg/s  {step['messages']:4d} msgs  p50 {_f(step['p50_ms'])} ms"
        f"  p99 {_f(step['p99_ms'])} ms  max {_f(step['max_ms'])} ms  lost {step['lost']}"
        f"  dup {step['duplicates']}  {step['replies_per_s']:5.1f} replies/s"
        f"  {'drained' if step['drained'] else 'NOT drained'}"
        f"  (POST alone p50 {_f(step['post_p50_ms'], 1)} / p99 {_f(step['post_p99_ms'], 1)} ms)",
        flush=True,
    )
    cpu = step.get("cpu_ms_per_message")
    if cpu:
        roles = ", ".join(f"{role} {ms:.1f}" for role, ms in cpu.items() if role != "total")
        cores = os.cpu_count() or 1
        print(
            f"         CPU a message {cpu['total']:.1f} ms ({roles}): at most "
            f"{cores * 1000 / max(cpu['total'], 0.1):.0f} msg/s on {cores} cores",
            flush=True,
        )


def print_stages(steps: list[dict], workers: int) -> None:
    names = [*stage_profile.STAGES, *stage_profile.DETAILS]
    header = "".join(f"{str(int(s['rate'])) + ' msg/s':>20s}" for s in steps)
    print(f"  {'stage (p50 / p99 ms)':24s}{header}")
    for name in names:
        label = f"  {name if name in stage_profile.STAGES else '  (' + name + ')':24s}"
        cells = []
        for step in steps:
            figures = step["stages"].get(name)
            if figures:
                cells.append(f"{figures['p50_ms']:>9.1f} /{figures['p99_ms']:>8.1f}")
            else:
                cells.append("-")
        print(label + "".join(f"{c:>20s}" for c in cells))
    for step in steps:
        profile = step["profile"]
        if not profile["works_most"]:
            continue
        # With one worker per queue group the bound is per group, not the sum: not shown.
        bound = (
            f": at most ~{workers * 1000 / profile['worker_ms_per_message']:.0f} msg/s on"
            f" {workers} worker(s)"
            if workers
            else ""
        )
        print(
            f"  at {step['rate']:.0f} msg/s: messages wait most in {profile['waits_most']}"
            f" ({profile['waits_share'] * 100:.0f} % of the mean); worker time"
            f" {profile['worker_ms_per_message']:.0f} ms a message, most in"
            f" {profile['works_most']} ({profile['works_share'] * 100:.0f} %){bound}"
        )


def start_workers(env, layout: str, workers: int, prefix: str, webhook_procs: int = 0) -> list:
    """``all``: ``workers`` solo workers consuming every queue (``make run``'s embedded worker);
    ``queues``: one worker per queue group as docker-compose runs them (webhook + celery, send:
    solo, or the webhook worker with ``webhook_procs`` prefork processes as docker-compose runs
    it with 4; ai: 32 threads, the AI call being
    I/O, as docker-compose), ``workers`` ignored."""
    if layout == "queues":
        return [
            common.start_worker(
                env,
                f"{prefix}webhook",
                queues="webhook,celery",
                **({"pool": "prefork", "concurrency": webhook_procs} if webhook_procs else {}),
            ),
            common.start_worker(env, f"{prefix}send", queues="send"),
            common.start_worker(env, f"{prefix}ai", pool="threads", queues="ai", concurrency=32),
        ]
    return [common.start_worker(env, f"{prefix}w{i}") for i in range(workers)]


def run_workers(args, env, port, org, replies, workers: int, celery_app) -> dict:
    processes = start_workers(
        env, args.layout, workers, f"e2e{workers}", webhook_procs=args.webhook_procs
    )
    try:
        wait_workers(celery_app, len(processes))
        print(f"\n{layout_name(args.layout, workers)}, steps of {args.duration:.0f} s:", flush=True)
        steps = []
        for rate in args.steps:
            step = run_step(
                port,
                org,
                replies,
                label=f"w{workers}r{int(rate)}",
                rate=rate,
                seconds=args.duration,
                drain=args.drain,
                timeout=args.timeout,
            )
            print_step(step)
            steps.append(step)
            if not step["drained"]:
                print("  (the queue did not drain: higher steps skipped)")
                break
        print_stages(steps, 0 if args.layout == "queues" else workers)
    finally:
        common.stop(*processes)
        celery_app.control.purge()
    peak = max((s["replies_per_s"] for s in steps), default=0.0)
    return {
        "workers": workers,
        "layout": args.layout,
        "steps": steps,
        "saturation_msg_s": saturation(steps),
        "peak_replies_s": peak,
    }


def layout_name(layout: str, workers: int) -> str:
    if layout == "queues":
        return "workers per queue group (webhook+celery solo, send solo, ai 32 threads)"
    return f"{workers} solo Celery worker(s) on every queue"


def wait_workers(celery_app, count: int) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if len(celery_app.control.ping(timeout=0.5) or []) >= count:
            return
    sys.exit("the Celery workers did not answer")


def run_noisy(args, env, port, quiet: Org, noisy: Org, replies, celery_app) -> dict:
    workers = max(args.workers)
    processes = start_workers(env, args.layout, workers, "noisy", webhook_procs=args.webhook_procs)
    result: dict = {
        "rate": args.noisy_rate,
        "noisy_load": args.noisy_load,
        "workers": workers,
        "layout": args.layout,
    }
    try:
        wait_workers(celery_app, len(processes))
        print(
            f"\nNoisy neighbour: {args.noisy_rate:.0f} msg/s of one organisation, "
            f"{layout_name(args.layout, workers)}, {args.duration:.0f} s; then with a second "
            f"organisation sending "
            f"{args.noisy_load:g} msg/s whose AI takes 10 s a reply",
            flush=True,
        )
        for phase in ("alone", "with_neighbour"):
            schedule = schedule_for(quiet, f"n{phase[0]}", args.noisy_rate, args.duration)
            tokens = [row[1] for row in schedule]
            if phase == "with_neighbour":
                schedule += schedule_for(noisy, "nb", args.noisy_load, args.duration)
                schedule.sort(key=lambda row: row[0])
            load = Load()
            load.run(port, schedule)
            drained = replies.wait(tokens, time.time() + args.drain)
            if not drained:
                replies.wait(tokens, time.time() + args.timeout)
            replies.scan()
            summary = latency_summary(tokens, load, replies)
            summary["drained"] = drained
            result[phase] = summary
            # Unanswered messages are left out of the percentiles: with any, p99 is a floor.
            print(
                f"  {phase:15s} p50 {_f(summary['p50_ms'])} ms  p99 {_f(summary['p99_ms'])} ms"
                f"  max {_f(summary['max_ms'])} ms  unanswered {summary['lost']}"
                f"  {'drained' if drained else 'NOT drained'}",
                flush=True,
            )
    finally:
        common.stop(*processes)
        celery_app.control.purge()
    alone, noisy_p99 = result["alone"]["p99_ms"], result["with_neighbour"]["p99_ms"]
    result["p99_ratio"] = round(noisy_p99 / alone, 2) if alone and noisy_p99 else None
    missing = result["with_neighbour"]["lost"]
    verdict = (
        "meets"
        if result["p99_ratio"] and result["p99_ratio"] <= 1.2 and not missing
        else ("MISSES")
    )
    print(f"  p99 with / without the neighbour: {result['p99_ratio']}x ({verdict} goal <= 1.2x)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=float, nargs="*", default=[5.0, 10.0, 20.0, 40.0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--workers", type=int, nargs="+", default=[2])
    parser.add_argument("--drain", type=float, default=20.0, help="seconds after the last POST")
    parser.add_argument("--timeout", type=float, default=60.0, help="more seconds to count lost")
    parser.add_argument(
        "--layout",
        choices=["all", "queues"],
        default="all",
        help="all: --workers solo workers on every queue; queues: one worker per queue group",
    )
    parser.add_argument(
        "--webhook-procs",
        type=int,
        default=0,
        help="--layout queues: the webhook worker's prefork processes (0: a solo worker)",
    )
    parser.add_argument("--noisy-neighbour", action="store_true")
    parser.add_argument("--noisy-rate", type=float, default=10.0)
    parser.add_argument("--noisy-load", type=float, default=1.0)
    args = parser.parse_args()

    url = common.bench_database_url("bench_e2e")
    common.recreate_database(url)
    env = common.env_for(url, **LOOP_ENV)
    common.migrate(env)
    common.setup_django(env)

    from apps.integrations import simulation
    from config.celery import app as celery_app

    celery_app.control.purge()
    sims = simulation.start(host="127.0.0.1", only=["gewe", "openai"])
    slow = simulation.start(host="127.0.0.1", only=["openai"]) if args.noisy_neighbour else None
    gewe = sims["gewe"]
    processes = []
    runs, noisy = [], None
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    try:
        org = Org("bench", gewe, sims.urls["gewe"], sims.urls["openai"])
        gewe.sent = TimedList()
        replies = Replies(gewe.sent)
        daphne, port = common.start_daphne(env)
        processes.append(daphne)
        print(
            f"Core loop: {CONVERSATIONS} conversations, instant AI, send delay 0; Daphne, "
            f"PostgreSQL, Redis; {cores} cores",
            flush=True,
        )
        if args.steps:
            for workers in args.workers:
                runs.append(run_workers(args, env, port, org, replies, workers, celery_app))
        if slow is not None:
            slow["openai"].add_fault("latency", delay=10.0)
            neighbour = Org("neighbour", gewe, sims.urls["gewe"], slow.urls["openai"])
            noisy = run_noisy(args, env, port, org, neighbour, replies, celery_app)
    finally:
        common.stop(*processes)
        sims.stop()
        if slow is not None:
            slow.stop()
        celery_app.control.purge()

    report(runs, noisy, cores, [load_before, os.getloadavg()[0]])


def report(runs: list[dict], noisy: dict | None, cores: int, load: list[float]) -> None:
    main_run = max(runs, key=lambda r: r["workers"]) if runs else None
    if main_run:
        print(
            f"\nSummary ({layout_name(main_run['layout'], main_run['workers'])}, {cores} cores,"
            " 1-minute load average"
            f" {load[0]:.1f} before and {load[1]:.1f} after):"
        )
        for step in main_run["steps"]:
            if step["rate"] == 20:
                p99 = step["p99_ms"]
                met = p99 is not None and p99 <= 500 and not step["lost"]
                verdict = "meets" if met else "MISSES"
                print(f"  p99 at 20 msg/s: {_f(p99, 1)} ms ({verdict} goal <= 500 ms)")
        sat = main_run["saturation_msg_s"]
        verdict = "meets" if sat and sat >= 40 else "MISSES"
        print(f"  saturation: {sat or 'below the first step'} msg/s ({verdict} goal >= 40)")
        lost = sum(s["lost"] for r in runs for s in r["steps"])
        dup = sum(s["duplicates"] for r in runs for s in r["steps"])
        print(f"  lost {lost}, duplicates {dup} over all steps (goal 0 and 0)")
    ratio = None
    by_workers = {r["workers"]: r for r in runs}
    if 1 in by_workers and 2 in by_workers:
        one, two = by_workers[1], by_workers[2]
        ratio = {
            "saturation": (
                round(two["saturation_msg_s"] / one["saturation_msg_s"], 2)
                if one["saturation_msg_s"] and two["saturation_msg_s"]
                else None
            ),
            "peak_replies": (
                round(two["peak_replies_s"] / one["peak_replies_s"], 2)
                if one["peak_replies_s"]
                else None
            ),
        }
        shown = {k: "-" if v is None else f"{v}x" for k, v in ratio.items()}
        print(
            f"  2 workers / 1 worker: saturation {shown['saturation']}, peak replies/s "
            f"{shown['peak_replies']} on {cores} cores (goal >= 1.7x on 4+ cores)"
        )
    line = {
        "bench": "e2e",
        "steps": [
            {k: v for k, v in step.items() if k != "stages"} | {"stages": step["stages"]}
            for step in (main_run["steps"] if main_run else [])
        ],
        "saturation_msg_s": main_run["saturation_msg_s"] if main_run else None,
        "workers": main_run["workers"] if main_run else None,
        "layout": main_run["layout"] if main_run else None,
        "cores": cores,
        "load_avg_1m": [round(x, 2) for x in load],
        "runs": [
            {
                "workers": r["workers"],
                "saturation_msg_s": r["saturation_msg_s"],
                "peak_replies_s": r["peak_replies_s"],
                "steps": [{k: v for k, v in s.items() if k != "stages"} for s in r["steps"]],
            }
            for r in runs
        ],
        "workers_ratio": ratio,
        "noisy_neighbour": noisy,
    }
    print(json.dumps(line, ensure_ascii=False, default=str))


if __name__ == "__main__":
    main()
