"""The AI app circuit breaker, shared through Redis: closed -> open after N failures in the
window (counted across processes), open skips, one probe after the cool-down (exactly one of
two racing processes gets it), a failed probe re-opens, a good one closes. The multi-process
cases run the breaker in separate Python processes against the same Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from django.conf import settings

from apps.core import events
from apps.integrations.breaker import AIAppBreaker

CHILD = """
import json, sys
import django
django.setup()
from django.conf import settings
from apps.core import events
settings.AI_BREAKER_FAILURES = 3
settings.AI_BREAKER_WINDOW_SECONDS = 30
settings.AI_BREAKER_COOLDOWN_SECONDS = 30
settings.AI_BREAKER_PROBE_SECONDS = 30
signals = []
events.ai_app_breaker_opened.receivers.clear()
events.ai_app_breaker_closed.receivers.clear()
events.ai_app_breaker_opened.connect(lambda sender, **kw: signals.append("opened"), weak=False)
events.ai_app_breaker_closed.connect(lambda sender, **kw: signals.append("closed"), weak=False)
from apps.integrations.breaker import AIAppBreaker
breaker = AIAppBreaker(org_id=1, ai_app_id=int(sys.argv[1]), ai_app_name="sim")
print(json.dumps("ready"), flush=True)
for line in sys.stdin:
    op = line.strip()
    signals.clear()
    if op == "fail":
        result = breaker.record_failure(error="boom")
    elif op == "allow":
        result = breaker.allow()
    elif op == "ok":
        result = breaker.record_success()
    elif op.startswith("cooldown "):
        settings.AI_BREAKER_COOLDOWN_SECONDS = float(op.split()[1])
        result = "set"
    else:
        break
    print(json.dumps([result, list(signals)]), flush=True)
"""

APP_ID = 424242


def _env() -> dict:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "REDIS_URL": settings.REDIS_URL,
        "CACHE_KEY_PREFIX": settings.CACHES["default"]["KEY_PREFIX"],
        # The child touches no table; on_commit only asks a connection for its state.
        "DATABASE_URL": "sqlite:////tmp/ai-breaker-child.sqlite3",
    }


class Worker:
    """A separate Python process holding its own breaker object for the same app."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(APP_ID)],
            env=_env(),
            cwd=settings.BASE_DIR,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self.process.stdout.readline()) == "ready"

    def send(self, op: str) -> None:
        self.process.stdin.write(op + "\n")
        self.process.stdin.flush()

    def read(self) -> tuple[str, list[str]]:
        line = self.process.stdout.readline()
        assert line, "worker died"
        result, signals = json.loads(line)
        return result, signals

    def __call__(self, op: str) -> tuple[str, list[str]]:
        self.send(op)
        return self.read()

    def stop(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=10)


@pytest.fixture
def two_workers():
    workers = [Worker(), Worker()]
    yield workers
    for worker in workers:
        worker.stop()


def test_breaker_states_across_two_worker_processes(two_workers):
    a, b = two_workers
    # Failures from two processes count together: the third opens it, once.
    assert a("fail") == ("", []) and b("fail") == ("", [])
    assert a("fail") == ("opened", ["opened"])
    assert b("fail") == ("", [])
    # Open: both processes skip the app during the cool-down.
    assert a("allow")[0] == "open" and b("allow")[0] == "open"
    # After the cool-down both race for the probe: exactly one gets it.
    a("cooldown 0")
    b("cooldown 0")
    a.send("allow")
    b.send("allow")
    assert sorted([a.read()[0], b.read()[0]]) == ["open", "probe"]
    # The probe failed: open again for a whole cool-down, without a second alert.
    a("cooldown 30")
    b("cooldown 30")
    assert a("fail") == ("reopened", [])
    assert b("allow")[0] == "open"
    # A new probe succeeds in one process; the other sees the breaker closed.
    b("cooldown 0")
    assert b("allow")[0] == "probe"
    assert b("ok") == ("half_open", ["closed"])
    assert a("allow")[0] == "closed" and b("allow")[0] == "closed"
    assert AIAppBreaker(org_id=1, ai_app_id=APP_ID).state().state == "closed"


@pytest.mark.django_db
def test_failures_outside_the_window_do_not_open(settings, django_capture_on_commit_callbacks):
    settings.AI_BREAKER_FAILURES = 2
    settings.AI_BREAKER_WINDOW_SECONDS = 0.05
    breaker = AIAppBreaker(org_id=1, ai_app_id=7)
    opened = []
    events.ai_app_breaker_opened.connect(
        lambda sender, **kw: opened.append(kw), weak=False, dispatch_uid="test-breaker"
    )
    try:
        assert breaker.record_failure() == ""
        import time

        time.sleep(0.1)
        assert breaker.record_failure() == ""  # the first one left the window
        with django_capture_on_commit_callbacks(execute=True):
            assert breaker.record_failure() == "opened"
    finally:
        events.ai_app_breaker_opened.disconnect(dispatch_uid="test-breaker")
    assert opened and opened[0]["ai_app_id"] == 7


def test_redis_outage_lets_calls_through(monkeypatch):
    class Broken:
        def eval(self, *args, **kwargs):
            raise ConnectionError("redis down")

    breaker = AIAppBreaker(org_id=1, ai_app_id=8, client=Broken())
    assert breaker.allow() == "closed"
    assert breaker.record_failure() == ""
