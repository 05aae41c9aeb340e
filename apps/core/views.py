"""Liveness and readiness endpoints for orchestrators."""

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.core.health import run_readiness_checks


@never_cache
@require_GET
def healthz(request):
    """The process is alive; no dependency is touched."""
    return JsonResponse({"status": "ok"})


@never_cache
@require_GET
def readyz(request):
    """This process can serve: its database and Redis answer; 503 names the ones that do not."""
    return _readiness_response(run_readiness_checks())


@never_cache
@require_GET
def readyz_deep(request):
    """The whole system, for humans and the dashboard: the process checks plus the Celery
    workers and beat. Not for load balancers (a worker outage is not a web outage)."""
    return _readiness_response(run_readiness_checks(deep=True))


def _readiness_response(checks: dict[str, dict]) -> JsonResponse:
    ready = all(result["ok"] for result in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
