"""CPU time of the machine's processes between two samples, grouped by role (Linux ``/proc``).

``bench/e2e`` divides it by the messages of a step: the CPU each message costs, per role
(PostgreSQL, Redis, Daphne, the Celery workers, this bench process with its simulators and load
generator, anything else). On N cores a rate above ``N * 1000 / total ms`` cannot be served,
whatever the layout: that bounds the saturation rate by measurement.
"""

from __future__ import annotations

import os
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")
ROLES = ("postgres", "redis", "daphne", "celery", "bench", "other")


def _role(pid: int, own: int) -> str:
    if pid == own:
        return "bench"
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "other"
    if comm.startswith("postgres") or "postgres:" in cmdline:
        return "postgres"
    if comm.startswith("redis"):
        return "redis"
    if "daphne" in cmdline:
        return "daphne"
    if "celery" in cmdline:
        return "celery"
    return "other"


def sample() -> dict[int, tuple[str, float]]:
    """Every process's role and CPU seconds so far (user + system, its threads included)."""
    own = os.getpid()
    out = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (_role(pid, own), (int(fields[11]) + int(fields[12])) / TICKS)
    return out


def between(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds per role spent between two samples (processes born in between count from
    zero; those that ended in between are not seen)."""
    spent = dict.fromkeys(ROLES, 0.0)
    for pid, (role, cpu) in after.items():
        spent[role] += cpu - (before[pid][1] if pid in before else 0.0)
    return spent


def per_message_ms(spent: dict[str, float], messages: int) -> dict[str, float]:
    ms = {role: round(seconds * 1000 / max(1, messages), 1) for role, seconds in spent.items()}
    ms["total"] = round(sum(spent.values()) * 1000 / max(1, messages), 1)
    return ms
