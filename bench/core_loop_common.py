"""Shared plumbing of bench/ingest and bench/e2e: a dedicated PostgreSQL database, Django set up
in this process against it, Daphne / Celery subprocesses, and a small keep-alive HTTP load
generator (threads, one persistent connection each)."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parents[1]


def bench_database_url(name: str) -> str:
    url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
    parsed = urlparse(url)
    if not parsed.scheme.startswith("postgres"):
        sys.exit("set DATABASE_URL to a PostgreSQL server")
    return urlunparse(parsed._replace(path=f"/{name}"))


def recreate_database(url: str) -> None:
    import psycopg

    parsed = urlparse(url)
    name = parsed.path.lstrip("/")
    admin = urlunparse(parsed._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def env_for(database_url: str, **extra: str) -> dict:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": database_url,
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/6"),
        "CELERY_EAGER": "0",
        "LOG_LEVEL": "WARNING",
        "CACHE_KEY_PREFIX": "sa-bench",
        "CHANNELS_PREFIX": "asgi-bench",
    }
    env.update(extra)
    return env


def setup_django(env: dict) -> None:
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def migrate(env: dict) -> None:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v", "0"], env=env, cwd=ROOT, check=True
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(cmd: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def start_daphne(env: dict) -> tuple[subprocess.Popen, int]:
    port = free_port()
    process = start(
        [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            "127.0.0.1",
            "-p",
            str(port),
            "config.asgi:application",
        ],
        env,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("daphne exited early")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process, port
        time.sleep(0.1)
    sys.exit("daphne did not start")


def start_worker(
    env: dict, name: str, pool: str = "solo", queues: str = "", concurrency: int = 0
) -> subprocess.Popen:
    """A Celery worker consuming every queue, or only ``queues`` (comma-separated)."""
    extra = (["-Q", queues] if queues else []) + (["-c", str(concurrency)] if concurrency else [])
    return start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            "-P",
            pool,
            "-l",
            "WARNING",
            "-n",
            f"{name}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            *extra,
        ],
        env,
    )


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


class Poster:
    """One persistent HTTP/1.1 connection posting JSON bodies."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def post(self, path: str, body: bytes) -> int:
        for attempt in range(2):
            try:
                self.conn.request(
                    "POST", path, body=body, headers={"Content-Type": "application/json"}
                )
                response = self.conn.getresponse()
                response.read()
                return response.status
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                if attempt:
                    raise
        return 0


def closed_loop(port: int, path: str, bodies, *, clients: int, seconds: float) -> dict:
    """``clients`` threads posting back to back for ``seconds``: throughput and latencies."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds
    body_iter = iter(bodies)

    def run() -> None:
        poster = Poster(port)
        local: list[float] = []
        while time.monotonic() < stop_at:
            with lock:
                body = next(body_iter)
            started = time.perf_counter()
            status = poster.post(path, body)
            local.append(time.perf_counter() - started)
            if status != 200:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(local)

    started = time.monotonic()
    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return summary(latencies, elapsed, errors[0])


def open_loop(port: int, path: str, bodies, *, rate: float, seconds: float, clients: int) -> dict:
    """Requests started at a fixed ``rate`` (per second) spread over ``clients`` connections."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    total = int(rate * seconds)
    start_time = time.monotonic() + 0.2
    body_iter = iter(bodies)
    next_index = [0]

    def run() -> None:
        poster = Poster(port)
        local: list[float] = []
        while True:
            with lock:
                index = next_index[0]
                next_index[0] += 1
                body = next(body_iter)
            if index >= total:
                break
            due = start_time + index / rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            started = time.perf_counter()
            status = poster.post(path, body)
            local.append(time.perf_counter() - started)
            if status != 200:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return summary(latencies, seconds, errors[0])


def summary(latencies: list[float], elapsed: float, errors: int) -> dict:
    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": percentile(latencies, 50) * 1000,
        "p99_ms": percentile(latencies, 99) * 1000,
        "errors": errors,
    }
