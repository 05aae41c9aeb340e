"""Short garbage-collector pauses for the long-lived ASGI process (Daphne).

A full (generation 2) collection scans every tracked object. With Django loaded and 2,000
sockets open that is about half a million objects, and one collection stopped the event loop
for 0.3-1.2 s: every push in that window waited (``bench/ws --profile`` showed it as the whole
p99 of the fan-out). Objects that live as long as the process (modules, settings, open
connections) need not be scanned again and again:

- at start-up, after a collection, everything alive is frozen (``gc.freeze``: moved to the
  permanent generation, which collections skip);
- every ``ASGI_GC_FREEZE_SECONDS`` the survivors are frozen again, so automatic full
  collections only scan what was created since (milliseconds);
- every ``ASGI_GC_FULL_SECONDS`` everything is unfrozen and collected once, so cyclic garbage
  frozen meanwhile (a closed socket's objects) is reclaimed: one long pause per period instead
  of one whenever the heap grew by a quarter.

Reference counting still frees non-cyclic objects at once; only cycle detection is deferred.
0 switches a step off.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

logger = logging.getLogger(__name__)

_started = False
_lock = threading.Lock()


def freeze_now(*, full: bool) -> None:
    """Collect (everything when ``full``, else the young generations) and freeze the rest."""
    if full:
        gc.unfreeze()
        gc.collect()
    else:
        gc.collect(1)
    gc.freeze()


def _loop(freeze_seconds: float, full_seconds: float) -> None:
    last_full = time.monotonic()
    step = freeze_seconds or full_seconds
    while True:
        time.sleep(step)
        full = bool(full_seconds) and time.monotonic() - last_full >= full_seconds
        started = time.perf_counter()
        freeze_now(full=full)
        if full:
            last_full = time.monotonic()
            logger.info(
                "gc: full collection and freeze in %.0f ms (%d objects frozen)",
                (time.perf_counter() - started) * 1000,
                gc.get_freeze_count(),
            )


def install(*, freeze_seconds: float, full_seconds: float) -> bool:
    """Freeze now and start the periodic thread (once per process). False when switched off."""
    global _started
    if not freeze_seconds and not full_seconds:
        return False
    with _lock:
        if _started:
            return True
        _started = True
    freeze_now(full=True)
    threading.Thread(
        target=_loop, args=(freeze_seconds, full_seconds), name="gc-freeze", daemon=True
    ).start()
    return True
