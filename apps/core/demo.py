"""Demo data hooks: each app may register a seeder that `seed_demo` calls (idempotently)."""

from __future__ import annotations

from collections.abc import Callable

DEMO_SEEDERS: list[Callable] = []


def demo_seeder(func: Callable) -> Callable:
    """Register ``func(org=..., owner=..., stdout=...)`` to run in `manage.py seed_demo`."""
    DEMO_SEEDERS.append(func)
    return func


def run_demo_seeders(*, org, owner, stdout) -> None:
    import importlib

    from django.conf import settings

    for app in settings.PROJECT_APPS:
        try:
            importlib.import_module(f"{app}.demo")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.demo":
                raise
    for seeder in DEMO_SEEDERS:
        seeder(org=org, owner=owner, stdout=stdout)
