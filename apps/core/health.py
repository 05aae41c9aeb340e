"""Readiness checks of the dependencies (each returns an error string or None)."""

from __future__ import annotations

from collections.abc import Callable

from django.db import connection

from apps.core.redis import get_redis


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready".
        return f"{exc.__class__.__name__}: {exc}"[:300]
    return None


def check_redis() -> str | None:
    try:
        get_redis().ping()
    except Exception as exc:  # noqa: BLE001
        return f"{exc.__class__.__name__}: {exc}"[:300]
    return None


# What /readyz answers for: the process itself can serve (its database and Redis). A web
# process must not leave the load balancer because a worker or the beat is down: that would turn
# a worker outage into a total outage.
READINESS_CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "redis": check_redis,
}

# What /readyz/deep adds for humans and the dashboard: other apps (monitoring) register the
# health of the rest of the system here (Celery workers, beat), name -> callable.
DEEP_READINESS_CHECKS: dict[str, Callable[[], str | None]] = {}


def run_readiness_checks(*, deep: bool = False) -> dict[str, dict]:
    checks = dict(READINESS_CHECKS)
    if deep:
        checks.update(DEEP_READINESS_CHECKS)
    results = {}
    for name, check in checks.items():
        error = check()
        results[name] = {"ok": error is None, **({"error": error} if error else {})}
    return results
