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
    """Every dependency answers; 503 names the ones that do not."""
    checks = run_readiness_checks()
    ready = all(result["ok"] for result in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )
