"""Daphne with a probe, for ``bench/ws/run.py --profile``: where does the fan-out time go?

Runs Daphne's command line unchanged, plus:

- ``SIGUSR1`` starts cProfile and resets the garbage-collector pause record;
- ``SIGUSR2`` stops it and writes ``<WS_PROBE_OUT>.prof`` (pstats) and ``<WS_PROBE_OUT>.json``
  (collections per generation with their total and longest pause in ms).

The signals are sent by the bench around one measured phase, so connection set-up is not in
the profile.
"""

from __future__ import annotations

import cProfile
import gc
import json
import os
import signal
import sys
import time

OUT = os.environ.get("WS_PROBE_OUT", "/tmp/ws-probe")
_profile: cProfile.Profile | None = None
_gc: dict[int, list[float]] = {}
_gc_started: list[float] = [0.0]


def _on_gc(phase: str, info: dict) -> None:
    if phase == "start":
        _gc_started[0] = time.perf_counter()
    else:
        _gc.setdefault(info["generation"], []).append(time.perf_counter() - _gc_started[0])


def _start(*_args) -> None:
    global _profile
    _gc.clear()
    _profile = cProfile.Profile()
    _profile.enable()


def _stop(*_args) -> None:
    global _profile
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
    from daphne.cli import CommandLineInterface

    sys.argv = ["daphne", *sys.argv[1:]]
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
