"""WebSocket benchmark: 2,000 concurrent connections on one Daphne process.

Measures
- memory per connection: the Daphne process's RSS after N idle authenticated sockets minus its
  RSS with one socket, divided by N;
- latency from publishing an event in *another process* (``apps.core.realtime.push``) to its
  receipt (a) by one client (a user group) and (b) by all 50 members of an organisation group
  (the time until the last of the 50 has it, and per receipt);
- the baseline, in the same run: a raw Redis PUBLISH -> SUBSCRIBE round trip between the same
  two processes (the floor any Redis-based fan-out pays).

Usage (a database the script may write bench rows to; it migrates it first)::

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/3 \
        .venv/bin/python bench/ws/run.py [--connections 2000] [--events 200]

Rows are created in organisations with the slug prefix ``bench-ws-``; Redis keys use the
prefixes ``sa-bench`` / ``asgi-bench``. Wall-clock timestamps are compared across processes on
one machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BENCH_ENV = {
    "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings.local"),
    "DEBUG": "false",  # DEBUG keeps every SQL query in memory: it would distort RSS
    "CACHE_KEY_PREFIX": "sa-bench",
    "CHANNELS_PREFIX": "asgi-bench",
    "WS_MAX_CONNECTIONS_PER_USER": "5",
    "WS_HEARTBEAT_INTERVAL_SECONDS": "30",
    "WS_HEARTBEAT_TIMEOUT_SECONDS": "600",
    "LOG_LEVEL": "WARNING",
}
# Daphne's options as the Dockerfile and docker-compose.yml run it (protocol pings every 120 s:
# the application's own heartbeat already pings every socket every 30 s).
DAPHNE_OPTIONS = ["--ping-interval", "120"]
ORG_SIZE = 50
GOAL_P99_MS = 50  # issue 19: one event to all 50 members at 10 events/s, 2,000 sockets open
ISSUE_BASELINE_P99_MS = 482  # what issue 19 measured before the fan-out work


def raise_fd_limit(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(max(wanted, soft), hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return target


def rss_bytes(pid: int) -> int:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss
    except ImportError:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    raise RuntimeError("cannot read RSS")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def _ms(seconds: list[float], p: float) -> float | None:
    return round(percentile(seconds, p) * 1000, 2) if seconds else None


def summary(name: str, seconds: list[float], expected: int) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"  {name:<44} n={len(ms):>5}/{expected:<5} p50={percentile(ms, 50):7.2f} ms  "
        f"p99={percentile(ms, 99):7.2f} ms  "
        f"mean={statistics.fmean(ms) if ms else float('nan'):7.2f} ms"
    )


def print_profile(probe_out: str) -> None:
    """Daphne's profile of phase (b) (``daphne_probe.py``): top functions by own time, GC."""
    import pstats

    print(f"\nDaphne profile of (b), {probe_out}.prof (top 25 by own time):")
    pstats.Stats(f"{probe_out}.prof").sort_stats("tottime").print_stats(25)
    print(f"garbage collections during (b): {Path(probe_out + '.json').read_text()}")


def print_trace(probe_out: str, members: list, count: int) -> None:
    """Where each slow event of (b) lost its time: Daphne's sends vs the clients' receipts, and
    the event-loop callbacks over 5 ms (``daphne_probe.py`` with ``WS_PROBE_TRACE``)."""
    trace = json.loads(Path(probe_out + ".trace.json").read_text())
    sends = trace["events"]
    rows = []
    for seq in range(count):
        got = [s.received[seq] * 1000 for s in members if seq in s.received]
        first_last = sends.get(str(seq)) or [float("nan")]
        rows.append((max(got) if got else float("nan"), seq, first_last[0], first_last[-1]))
    first = [r[2] for r in rows]
    last = [r[3] for r in rows]
    print("\nTrace of (b): publication -> Daphne's first / last send (ms)")
    print(f"  first send p50={percentile(first, 50):7.2f}  p99={percentile(first, 99):7.2f}")
    print(f"  last send  p50={percentile(last, 50):7.2f}  p99={percentile(last, 99):7.2f}")
    print("  slowest events: last receipt / first send / last send (ms)")
    for received, seq, first_send, last_send in sorted(rows, reverse=True)[:8]:
        at = trace["published"].get(str(seq), 0) % 1000
        print(
            f"    seq {seq:>4} at {at:8.3f} s: {received:8.2f} / {first_send:8.2f} / "
            f"{last_send:8.2f}"
        )
    slow = trace["slow"]
    print(f"  event-loop callbacks over 5 ms: {len(slow)}")
    for at, ms, cpu_ms, what in sorted(slow, key=lambda row: -row[1])[:15]:
        print(f"    at {at % 1000:8.3f} s {ms:7.1f} ms (CPU {cpu_ms:5.1f} ms) {what}")
    print("  garbage collections over 5 ms (at, ms, CPU ms, generation, thread):")
    for row in trace["gc"]:
        print(f"    {row[0] % 1000:8.3f} s {row[1:]}")


# --- the publisher (a separate process) -----------------------------------------------------------


def publisher(mode: str, target: str, count: int, interval: float) -> None:
    import django

    django.setup()
    time.sleep(0.5)
    if mode == "redis":
        from apps.core.redis import get_redis

        client = get_redis()
        for seq in range(count):
            client.publish(target, json.dumps({"t": time.time(), "seq": seq}))
            time.sleep(interval)
        return
    from apps.core import realtime

    for seq in range(count):
        realtime.push("bench", {"t": time.time(), "seq": seq}, groups=[target])
        time.sleep(interval)


def run_publisher(mode: str, target: str, count: int, interval: float, env: dict) -> None:
    subprocess.run(
        [sys.executable, __file__, "--publish", mode, target, str(count), str(interval)],
        env=env,
        cwd=ROOT,
        check=True,
    )


# --- the benchmark --------------------------------------------------------------------------------


def prepare(connections: int):
    """Organisations of 50 members each, one socket per member; returns (orgs, users, tokens)."""
    import django

    django.setup()
    from django.core.management import call_command
    from rest_framework_simplejwt.tokens import AccessToken

    from apps.accounts.models import User
    from apps.orgs.models import Membership, Organization, Role

    call_command("migrate", interactive=False, verbosity=0)
    org_count = (connections + ORG_SIZE - 1) // ORG_SIZE
    orgs = []
    users = []
    for index in range(org_count):
        org, _ = Organization.objects.get_or_create(
            slug=f"bench-ws-{index}", defaults={"name": f"Bench WS {index}"}
        )
        orgs.append(org)
        emails = [f"bench-ws-{index}-{n}@bench.invalid" for n in range(ORG_SIZE)]
        existing = {u.email: u for u in User.objects.filter(email__in=emails)}
        missing = [
            User(email=e, name=e.split("@")[0], default_org=org)
            for e in emails
            if e not in existing
        ]
        for user in missing:
            user.set_unusable_password()
        User.objects.bulk_create(missing)
        members = list(User.objects.filter(email__in=emails).order_by("email"))
        Membership.objects.bulk_create(
            [Membership(org=org, user=u, role=Role.AGENT) for u in members],
            ignore_conflicts=True,
        )
        users.extend((org, u) for u in members)
    users = users[:connections]
    tokens = [str(AccessToken.for_user(u)) for _, u in users]
    return orgs, users, tokens


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Socket:
    """One client connection: records ``bench`` event receipt times, answers pings."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.received: dict[int, float] = {}
        self.task = asyncio.create_task(self.read())

    async def read(self) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            async for raw in self.ws:
                now = time.time()
                event = json.loads(raw)
                if event["type"] == "bench":
                    self.received[event["data"]["seq"]] = now - event["data"]["t"]
                elif event["type"] == "ping":
                    await self.ws.send('{"type":"pong"}')
        except ConnectionClosed:
            pass


async def open_socket(url: str, token: str) -> Socket:
    from websockets.asyncio.client import connect

    ws = await connect(
        f"{url}/ws/chat/?token={token}",
        origin="http://127.0.0.1",
        open_timeout=60,
        ping_interval=None,
        max_queue=64,
    )
    first = json.loads(await asyncio.wait_for(ws.recv(), timeout=60))
    if first["type"] != "connection_established":
        raise RuntimeError(f"unexpected first event {first}")
    return Socket(ws)


async def bench(args, users, tokens) -> None:
    from apps.core import realtime
    from apps.core.redis import redis_key

    limit = raise_fd_limit(args.connections * 2 + 1024)
    env = dict(os.environ)  # BENCH_ENV defaults, overridable from the environment
    port = free_port()
    probe_dir = args.profile or args.trace
    probe_out = str(Path(probe_dir) / "ws-probe") if probe_dir else ""
    if probe_out:
        Path(probe_dir).mkdir(parents=True, exist_ok=True)
        env["WS_PROBE_OUT"] = probe_out
        env["WS_PROBE_TRACE"] = "1" if args.trace else "0"
    daphne = subprocess.Popen(
        [
            sys.executable,
            *(
                [str(Path(__file__).with_name("daphne_probe.py"))]
                if probe_out
                else ["-m", "daphne"]
            ),
            "-v",
            "0",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            *DAPHNE_OPTIONS,
            "config.asgi:application",
        ],
        env=env,
        cwd=ROOT,
    )
    url = f"ws://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            await asyncio.sleep(0.1)
        print(f"fd limit {limit}; Daphne pid {daphne.pid} on {url}")

        # Warm up: one socket, so imports, pools and the channel layer exist before measuring.
        warm = await open_socket(url, tokens[0])
        await asyncio.sleep(1)
        rss_one = rss_bytes(daphne.pid)

        started = time.perf_counter()
        gate = asyncio.Semaphore(100)

        async def guarded(token):
            async with gate:
                return await open_socket(url, token)

        sockets = [warm, *await asyncio.gather(*(guarded(t) for t in tokens[1:]))]
        connect_seconds = time.perf_counter() - started
        await asyncio.sleep(2)
        rss_all = rss_bytes(daphne.pid)
        n = len(sockets)
        print(f"\n{n} concurrent authenticated connections opened in {connect_seconds:.1f} s")
        print(
            f"Daphne RSS: {rss_one / 2**20:.1f} MiB with 1 socket, {rss_all / 2**20:.1f} MiB with "
            f"{n}: {(rss_all - rss_one) / (n - 1) / 1024:.1f} KiB per connection"
        )

        count, interval = args.events, args.interval
        print(f"\nLatency, publisher in another process, {count} events at {1 / interval:.0f}/s:")

        # Baseline: raw Redis PUBLISH -> SUBSCRIBE between the two processes.
        import redis.asyncio as aioredis
        from django.conf import settings

        channel = redis_key("bench", "pubsub")
        sub_client = aioredis.Redis.from_url(settings.REDIS_URL)
        pubsub = sub_client.pubsub()
        await pubsub.subscribe(channel)
        baseline: list[float] = []

        async def listen():
            while len(baseline) < count:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1)
                if message:
                    baseline.append(time.time() - json.loads(message["data"])["t"])

        listener = asyncio.create_task(listen())
        await asyncio.to_thread(run_publisher, "redis", channel, count, interval, env)
        try:
            await asyncio.wait_for(listener, timeout=5)
        except TimeoutError:
            pass
        await pubsub.aclose()
        await sub_client.aclose()
        print(summary("baseline: Redis PUBLISH -> SUBSCRIBE", baseline, count))

        # (a) one client: the user group of the first socket's user.
        org0, user0 = users[0]
        await asyncio.to_thread(
            run_publisher,
            "push",
            realtime.group_for_user(org0.id, user0.id),
            count,
            interval,
            env,
        )
        await asyncio.sleep(1)
        one = list(sockets[0].received.values())
        print(summary("(a) push -> one client (user group)", one, count))

        # (b) the org group of the first organisation: its 50 members.
        for s in sockets:
            s.received.clear()
        members = [s for s, (org, _) in zip(sockets, users, strict=True) if org.id == org0.id]
        if probe_out:
            os.kill(daphne.pid, signal.SIGUSR1)
        await asyncio.to_thread(
            run_publisher, "push", realtime.group_for_org(org0.id), count, interval, env
        )
        await asyncio.sleep(1)
        if probe_out:
            os.kill(daphne.pid, signal.SIGUSR2)
        per_receipt = [v for s in members for v in s.received.values()]
        complete = [
            max(s.received[seq] for s in members)
            for seq in range(count)
            if all(seq in s.received for s in members)
        ]
        others = sum(len(s.received) for s in sockets if s not in members)
        print(summary(f"(b) push -> all {len(members)} members (last receipt)", complete, count))
        print(summary("(b) push -> each member (every receipt)", per_receipt, count * len(members)))
        print(f"  events seen by the {n - len(members)} sockets of other orgs: {others}")
        if probe_out:
            await asyncio.sleep(2)
            if args.trace:
                print_trace(probe_out, members, count)
            else:
                print_profile(probe_out)

        # (a) once more, to show the run-to-run spread on a shared machine.
        for s in sockets:
            s.received.clear()
        await asyncio.to_thread(
            run_publisher,
            "push",
            realtime.group_for_user(org0.id, user0.id),
            count,
            interval,
            env,
        )
        await asyncio.sleep(1)
        again = list(sockets[0].received.values())
        print(summary("(a) again, after (b)", again, count))
        print(f"  load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"\nDaphne RSS at the end: {rss_bytes(daphne.pid) / 2**20:.1f} MiB")
        figures = {
            "bench": "ws",
            "connections": n,
            "org_size": len(members),
            "events": count,
            "events_per_s": round(1 / interval, 2),
            "baseline_redis_p50_ms": _ms(baseline, 50),
            "baseline_redis_p99_ms": _ms(baseline, 99),
            "one_client_p50_ms": _ms(one, 50),
            "one_client_p99_ms": _ms(one, 99),
            "fanout_p50_ms": _ms(complete, 50),
            "fanout_p99_ms": _ms(complete, 99),
            "fanout_max_ms": round(max(complete) * 1000, 2) if complete else None,
            "fanout_complete": len(complete),
            "other_org_receipts": others,
            "kib_per_connection": round((rss_all - rss_one) / (n - 1) / 1024, 1),
            "goal_fanout_p99_ms": GOAL_P99_MS,
            "meets_goal": bool(complete) and _ms(complete, 99) <= GOAL_P99_MS,
            "issue_baseline_fanout_p99_ms": ISSUE_BASELINE_P99_MS,
            "cores": os.cpu_count(),
            "load_average": round(os.getloadavg()[0], 1),
        }
        for s in sockets:
            await s.ws.close()
    finally:
        daphne.terminate()
        try:
            daphne.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daphne.kill()
    # Last, after Daphne's own shutdown output: the one line a dashboard or CI collects.
    print(json.dumps(figures), flush=True)


def main() -> None:
    for key, value in BENCH_ENV.items():
        os.environ.setdefault(key, value)
    if len(sys.argv) > 1 and sys.argv[1] == "--publish":
        _, _, mode, target, count, interval = sys.argv
        publisher(mode, target, int(count), float(interval))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--events", type=int, default=150)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between events")
    parser.add_argument(
        "--profile",
        default="",
        metavar="DIR",
        help="run Daphne under cProfile during (b) and print where its time went",
    )
    parser.add_argument(
        "--trace",
        default="",
        metavar="DIR",
        help="record Daphne's send times and slow event-loop callbacks during (b), no profiler",
    )
    args = parser.parse_args()
    _orgs, users, tokens = prepare(args.connections)
    asyncio.run(bench(args, users, tokens))


if __name__ == "__main__":
    main()
