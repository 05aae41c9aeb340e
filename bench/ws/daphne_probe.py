"""Daphne with a probe, for ``bench/ws/run.py --profile``: where does the fan-out time go?

Runs Daphne's command line unchanged, plus:

- ``SIGUSR1`` starts cProfile and resets the garbage-collector pause record;
- ``SIGUSR2`` stops it and writes ``<WS_PROBE_OUT>.prof`` (pstats) and ``<WS_PROBE_OUT>.json``
  (collections per generation with their total and longest pause in ms).

The signals are sent by the bench around one measured phase, so connection set-up is not in
the profile.

With ``WS_PROBE_TRACE=1`` (``run.py --trace``) the same signals record timestamps instead of a
profile (no cProfile overhead): every event-loop callback that ran longer than 5 ms (what it was
and when), and for every ``bench`` event the time from its publication to the first and the last
local socket's send. ``<WS_PROBE_OUT>.trace.json`` holds them.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import signal
import sys
import threading
import time

OUT = os.environ.get("WS_PROBE_OUT", "/tmp/ws-probe")
TRACE = os.environ.get("WS_PROBE_TRACE") == "1"
SLOW_CALLBACK_SECONDS = 0.005
_trace: dict | None = None
_profile: cProfile.Profile | None = None
_gc: dict[int, list[float]] = {}
_gc_started: list[float] = [0.0, 0.0]


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[:] = [time.perf_counter(), time.thread_time()]
    else:
        pause = time.perf_counter() - _gc_started[0]
        _gc.setdefault(info["generation"], []).append(pause)
        if _trace is not None and pause >= SLOW_CALLBACK_SECONDS:
            cpu_ms = round((time.thread_time() - _gc_started[1]) * 1000, 1)
            thread = threading.current_thread().name
            _trace["gc"].append(
                (round(time.time(), 3), round(pause * 1000, 1), cpu_ms, info["generation"], thread)
            )


def _describe(handle) -> str:
    """A slow callback in words: the coroutine a task step resumes, else the callback."""
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    task = getattr(owner, "_Task__task", owner)  # TaskStepMethWrapper or Task.task_wakeup
    coro = getattr(task, "get_coro", lambda: None)()
    frame = getattr(coro, "cr_frame", None)
    if frame is not None:
        return f"task {coro.__qualname__} at {frame.f_code.co_filename}:{frame.f_lineno}"
    return repr(handle)[:200]


def _install_trace() -> None:
    """Time every event-loop callback, and each ``bench`` event's sends (only while tracing)."""
    import asyncio.events

    from apps.core.ws import RealtimeConsumer

    run = asyncio.events.Handle._run

    def timed_run(handle):
        if _trace is None:
            return run(handle)
        started = time.perf_counter()
        cpu = time.thread_time()
        what = _describe(handle)
        try:
            return run(handle)
        finally:
            spent = time.perf_counter() - started
            if spent >= SLOW_CALLBACK_SECONDS:
                at = round(time.time(), 3)
                cpu_ms = round((time.thread_time() - cpu) * 1000, 1)
                _trace["slow"].append((at, round(spent * 1000, 1), cpu_ms, what))

    asyncio.events.Handle._run = timed_run
    send_envelope = RealtimeConsumer.send_envelope

    async def traced_send_envelope(self, envelope, *, text=None):
        await send_envelope(self, envelope, text=text)
        if _trace is not None and envelope.get("type") == "bench":
            data = envelope["data"]
            _trace["published"][str(data["seq"])] = round(data["t"], 3)
            sends = _trace["events"].setdefault(str(data["seq"]), [])
            late = round((time.time() - data["t"]) * 1000, 2)
            if len(sends) < 2:
                sends.append(late)
            else:
                sends[1] = late

    RealtimeConsumer.send_envelope = traced_send_envelope


def _start(*_args) -> None:
    global _profile, _trace
    _gc.clear()
    if TRACE:
        _trace = {"slow": [], "events": {}, "gc": [], "published": {}}
        return
    _profile = cProfile.Profile()
    _profile.enable()


def _stop(*_args) -> None:
    global _profile, _trace
    if _trace is not None:
        with open(f"{OUT}.trace.json", "w") as handle:
            json.dump(_trace, handle)
        _trace = None
    if _profile is None:
        return
    _profile.disable()
    _profile.dump_stats(f"{OUT}.prof")
    _profile = None
    summary = {
        str(generation): {
            "collections": len(pauses),
            "total_ms": round(sum(pauses) * 1000, 2),
            "max_ms": round(max(pauses) * 1000, 2),
        }
        for generation, pauses in sorted(_gc.items())
    }
    summary["objects_tracked"] = len(gc.get_objects())
    with open(f"{OUT}.json", "w") as handle:
        json.dump(summary, handle)


def main() -> None:
    gc.callbacks.append(_on_gc)
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    if TRACE:
        import django

        sys.path.insert(0, os.getcwd())  # as Daphne's own command line does
        django.setup()
        _install_trace()
    from daphne.cli import CommandLineInterface

    sys.argv = ["daphne", *sys.argv[1:]]
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
