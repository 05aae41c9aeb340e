"""AIConcurrencyLimiter against the real Redis (db 15 unless REDIS_URL says otherwise)."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
import uuid

import pytest
import redis

from apps.integrations.clients.concurrency import AIConcurrencyLimiter
from apps.integrations.clients.errors import ConcurrencyTimeout

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def redis_client():
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.fail(f"Redis is required for these tests ({REDIS_URL})")
    yield client
    client.close()


@pytest.fixture
def key(redis_client):
    name = f"test:ai-inflight:{uuid.uuid4().hex}"
    yield name
    for suffix in ("holders", "queue", "waiters", "ticket"):
        redis_client.delete("{" + name + "}:" + suffix)
    redis_client.delete(f"{name}:active", f"{name}:peak")


_TRACK = """
local active = redis.call('INCR', KEYS[1])
local peak = tonumber(redis.call('GET', KEYS[2]) or '0')
if active > peak then redis.call('SET', KEYS[2], active) end
return active
"""


def _worker(url: str, key: str, threads: int, jobs: int, hold: float) -> None:
    client = redis.Redis.from_url(url)
    limiter = AIConcurrencyLimiter(client, key, limit=10, timeout=20)
    track = client.register_script(_TRACK)

    def run() -> None:
        for _ in range(jobs):
            with limiter.slot():
                track(keys=[f"{key}:active", f"{key}:peak"])
                time.sleep(hold)
                client.decr(f"{key}:active")

    pool = [threading.Thread(target=run) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def test_at_most_ten_in_flight_across_processes(redis_client, key):
    ctx = multiprocessing.get_context("fork")
    # 6 processes x 3 threads = 18 concurrent callers competing for 10 slots.
    procs = [ctx.Process(target=_worker, args=(REDIS_URL, key, 3, 2, 0.1)) for _ in range(6)]
    started = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    assert all(p.exitcode == 0 for p in procs)
    # 36 jobs of 0.1 s through 10 slots need at least 4 rounds.
    assert time.monotonic() - started >= 0.4
    assert int(redis_client.get(f"{key}:peak")) == 10
    assert int(redis_client.get(f"{key}:active")) == 0
    assert AIConcurrencyLimiter(redis_client, key).in_flight() == 0


def test_waiters_are_served_in_fifo_order(redis_client, key):
    limiter = AIConcurrencyLimiter(redis_client, key, limit=1, timeout=5, poll_interval=0.005)
    first = limiter.acquire()
    order: list[int] = []
    threads = []
    for i in range(4):

        def wait(i: int = i) -> None:
            with limiter.slot():
                order.append(i)
                time.sleep(0.02)

        t = threading.Thread(target=wait)
        t.start()
        threads.append(t)
        # Make sure waiter i has taken its ticket before i+1 arrives.
        deadline = time.monotonic() + 2
        while limiter.queued() < i + 1 and time.monotonic() < deadline:
            time.sleep(0.005)
    assert limiter.queued() == 4
    limiter.release(first)
    for t in threads:
        t.join(5)
    assert order == [0, 1, 2, 3]


def test_timeout_raises_and_leaves_the_queue(redis_client, key):
    limiter = AIConcurrencyLimiter(redis_client, key, limit=2, timeout=0.2)
    a, b = limiter.acquire(), limiter.acquire()
    started = time.monotonic()
    with pytest.raises(ConcurrencyTimeout) as info:
        limiter.acquire()
    assert 0.2 <= time.monotonic() - started < 1.0
    assert info.value.retryable
    assert limiter.queued() == 0 and limiter.in_flight() == 2
    limiter.release(a)
    limiter.release(b)
    assert limiter.in_flight() == 0


def test_crashed_holder_lease_expires(redis_client, key):
    limiter = AIConcurrencyLimiter(redis_client, key, limit=1, timeout=2, lease_seconds=0.3)
    token = limiter.acquire()  # never released: the process "crashed"
    started = time.monotonic()
    with limiter.slot():
        waited = time.monotonic() - started
    assert 0.2 <= waited < 1.5
    assert limiter.refresh(token) is False


def test_refresh_keeps_a_long_call_slot(redis_client, key):
    limiter = AIConcurrencyLimiter(redis_client, key, limit=1, timeout=0.1, lease_seconds=0.3)
    token = limiter.acquire()
    for _ in range(3):
        time.sleep(0.15)
        assert limiter.refresh(token)
    with pytest.raises(ConcurrencyTimeout):
        limiter.acquire()
    limiter.release(token)


def test_crashed_waiter_does_not_block_the_queue(redis_client, key):
    limiter = AIConcurrencyLimiter(
        redis_client, key, limit=1, timeout=2, poll_interval=0.01, waiter_ttl_seconds=0.1
    )
    holder = limiter.acquire()
    # A waiter takes a ticket, then its process dies without leaving the queue.
    ghost = AIConcurrencyLimiter(redis_client, key, limit=1, timeout=0.05, waiter_ttl_seconds=0.1)
    ghost._acquire(keys=ghost._keys, args=["ghost", 1, ghost.lease_ms, ghost.waiter_ttl_ms])
    assert limiter.queued() == 1
    limiter.release(holder)
    with limiter.slot(timeout=1.0):
        assert limiter.in_flight() == 1


def test_ai_client_holds_a_slot_per_call(redis_client, key, fresh_sims):
    from apps.integrations.clients.openai_compat import OpenAICompatClient

    limiter = AIConcurrencyLimiter(redis_client, key, limit=1, timeout=0.1)
    client = OpenAICompatClient(fresh_sims.urls["openai"], "sk-sim-openai", "m", limiter=limiter)
    stream = client.chat_stream("hello")
    assert next(stream) == "echo"
    assert limiter.in_flight() == 1
    with pytest.raises(ConcurrencyTimeout):
        client.chat("blocked")
    rest = list(stream)
    assert rest[-1].text == "echo: hello"
    assert limiter.in_flight() == 0
    assert client.chat("free").text == "echo: free"
