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


# Other apps (monitoring) append checks here: name -> callable returning an error or None.
READINESS_CHECKS: dict[str, Callable[[], str | None]] = {
    "database": check_database,
    "redis": check_redis,
}


def run_readiness_checks() -> dict[str, dict]:
    results = {}
    for name, check in READINESS_CHECKS.items():
        error = check()
        results[name] = {"ok": error is None, **({"error": error} if error else {})}
    return results
