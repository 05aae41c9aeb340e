"""The core loop against real processes: webhooks POSTed to Daphne, two Celery workers (not
eager) on the real Redis broker, PostgreSQL with committed rows, the GeWe and OpenAI
simulators over HTTP.

- the same event delivered 5 times concurrently and again later: one message, one AI turn, one
  reply;
- a worker SIGKILLed during the AI call: the message is answered exactly once after recovery;
- many messages of one conversation with two workers: every message answered once, in order.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import pytest
import requests
from django.conf import settings
from django.db import connection

from apps.conversations.models import AITurn, Conversation, Message
from apps.integrations.models import WebhookEvent
from config.celery import app as celery_app
from tests.conftest import requires_postgres
from tests.conversations.helpers import ai_app, gewe_connection, gewe_login
from tests.orgs.factories import OrganizationFactory

pytestmark = [requires_postgres, pytest.mark.integration]

CUSTOMER = "wxid_live_customer"
ENV = {
    "CELERY_EAGER": "0",
    "WECHAT_SEND_DELAY_SCALE": "0",
    "CONVERSATION_MERGE_WINDOW_SECONDS": "0",
    "CONVERSATION_AI_LOCK_SECONDS": "4",
    "CONVERSATION_AI_BUSY_RETRY_SECONDS": "0.2",
    "DB_CONN_MAX_AGE": "0",
    "LOG_LEVEL": "WARNING",
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"port {port} did not open")


def _database_url() -> str:
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def _env() -> dict:
    return {
        **os.environ,
        **ENV,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "REDIS_URL": settings.REDIS_URL,
    }


def _worker(
    name: str, *, queues: str | None = None, env: dict | None = None, log=None
) -> subprocess.Popen:
    """A real solo Celery worker (all queues unless ``queues``); ``log`` an open file to keep its
    INFO log, else it is quiet. ``process.nodename`` is its name for pings."""
    nodename = f"{name}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo"]
    command += ["-l", "INFO" if log is not None else "WARNING", "-n", nodename]
    command += ["--without-gossip", "--without-mingle", "--without-heartbeat"]
    if queues:
        command += ["-Q", queues]
    process = subprocess.Popen(
        command,
        env={**_env(), **(env or {})},
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=log if log is not None else subprocess.DEVNULL,
    )
    process.nodename = nodename  # type: ignore[attr-defined]
    return process


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


@pytest.fixture(scope="module")
def daphne(django_db_setup, django_db_blocker):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL)")
    port = _free_port()
    process = subprocess.Popen(
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
        env=_env(),
        cwd=settings.BASE_DIR,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(process)


@pytest.fixture
def workers():
    started: list[subprocess.Popen] = []

    def start(count: int = 1) -> list[subprocess.Popen]:
        if not started:
            # Earlier (eager-off) tests may have left tasks on the shared broker queue; real
            # workers would chew through that backlog before this test's tasks.
            celery_app.control.purge()
        new = [_worker(f"live{i}") for i in range(count)]
        started.extend(new)
        time.sleep(2.5)  # let them connect to the broker
        return new

    yield start
    for process in started:
        _stop(process)


@pytest.fixture
def not_eager(settings):
    # Read Celery's value before touching Django's setting: Celery reads its configuration from
    # Django's settings lazily, so reading it afterwards would "restore" False for every later
    # test (eager tests then left their tasks on the broker).
    previous = celery_app.conf.task_always_eager
    settings.CELERY_TASK_ALWAYS_EAGER = False
    celery_app.conf.task_always_eager = False
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def loop(transactional_db, simulators_clean, settings):
    """An organisation with a logged-in GeWe account and a default AI app (committed rows)."""
    settings.WECHAT_SEND_DELAY_SCALE = 0
    org = OrganizationFactory(name="Live", slug=f"live-{uuid.uuid4().hex[:6]}")
    gewe = simulators_clean["gewe"]
    conn = gewe_connection(org, simulators_clean)
    account = gewe_login(org, conn, gewe)
    ai_app(org, simulators_clean)
    return {
        "org": org,
        "connection": conn,
        "account": account,
        "gewe": gewe,
        "openai": simulators_clean["openai"],
    }


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")


def post(base_url: str, conn, payload) -> int:
    return requests.post(base_url + conn.webhook_path, json=payload, timeout=10).status_code


def test_same_event_five_times_concurrently_and_later(daphne, workers, loop, not_eager):
    workers(2)
    conn, gewe = loop["connection"], loop["gewe"]
    payload = gewe.build_text(
        from_wxid=CUSTOMER, text="并发测试", to_account=loop["account"].device_id
    )
    barrier = threading.Barrier(5)
    codes: list[int] = []

    def deliver() -> None:
        barrier.wait()
        codes.append(post(daphne, conn, payload))

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert codes == [200] * 5
    wait_until(lambda: Message.objects.filter(sender_kind="ai", status="sent").exists())
    time.sleep(1.0)
    assert post(daphne, conn, payload) == 200  # a redelivery "later"
    time.sleep(1.5)
    assert WebhookEvent.objects.count() == 1
    assert Message.objects.filter(direction="inbound").count() == 1
    assert AITurn.objects.count() == 1
    assert [s["body"]["content"] for s in gewe.sent] == ["echo: 并发测试"]
    assert len(loop["openai"].requests_to("/chat/completions")) == 1


def test_worker_killed_mid_turn_answers_once_after_recovery(
    daphne, workers, loop, not_eager, settings
):
    (victim,) = workers(1)
    conn, gewe, openai = loop["connection"], loop["gewe"], loop["openai"]
    openai.add_fault("latency", path="/chat/completions", delay=3.0, times=1)
    payload = gewe.build_text(
        from_wxid=CUSTOMER, text="杀掉我", to_account=loop["account"].device_id
    )
    assert post(daphne, conn, payload) == 200
    # The worker is inside the (slow) AI call: kill it without warning.
    wait_until(lambda: openai.requests_to("/chat/completions"), timeout=20)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    turn = AITurn.objects.get()
    assert turn.status == AITurn.Status.RUNNING and gewe.sent == []
    # Beat would run the recovery; here the test does, then a fresh worker picks it up.
    workers(1)
    settings.CONVERSATION_AI_RECOVER_SECONDS = 0
    from apps.conversations.tasks import core_loop_recover

    wait_until(lambda: core_loop_recover()["ai_turns"] >= 1, timeout=5)
    wait_until(lambda: Message.objects.filter(sender_kind="ai", status="sent").exists(), timeout=30)
    time.sleep(1.0)
    core_loop_recover()
    time.sleep(1.0)
    assert [s["body"]["content"] for s in gewe.sent] == ["echo: 杀掉我"]
    turn.refresh_from_db()
    assert turn.status == AITurn.Status.ANSWERED and turn.attempts == 2
    assert Message.objects.filter(sender_kind="ai").count() == 1


def test_one_conversation_two_workers_in_order(daphne, workers, loop, not_eager):
    workers(2)
    conn, gewe = loop["connection"], loop["gewe"]
    device = loop["account"].device_id
    texts = [f"消息{i:02d}" for i in range(12)]
    for text in texts:
        assert (
            post(daphne, conn, gewe.build_text(from_wxid=CUSTOMER, text=text, to_account=device))
            == 200
        )

    def answered_lines():
        lines = []
        for record in gewe.sent:
            lines += record["body"]["content"].removeprefix("echo: ").split("\n")
        return lines

    wait_until(lambda: len(answered_lines()) >= len(texts), timeout=60)
    time.sleep(1.0)
    lines = answered_lines()
    assert sorted(lines) == texts  # every message answered exactly once
    # Turns never overlapped: each reply answers messages newer than the previous reply's.
    assert lines == sorted(lines)
    conversation = Conversation.objects.get()
    assert (
        conversation.ai_answered_message_id
        == Message.objects.filter(direction="inbound")
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    replies = list(Message.objects.filter(sender_kind="ai").order_by("id"))
    assert [r.platform_msg_id for r in replies] == sorted(
        (r.platform_msg_id for r in replies), key=int
    )
