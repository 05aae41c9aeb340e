"""``POST /api/v1/integrations/services/restart`` (seed 000): put one integration, or all of an
organisation's, back into a known state and say at once whether it works.

For a platform connection: forget the cached webhook lookup of this process, register the
callback URL with the platform again, and check the credentials live. For an AI app: drop its
cached row, close its circuit breaker (shared by every worker in Redis), and run one live check.
Each target's outcome is reported separately: one failing service never hides the others. The
restart is written to the audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.translation import gettext as _

from apps.accounts.models import AuditEvent
from apps.accounts.services import audit_record
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.integrations import selectors, services
from apps.integrations.breaker import breaker_for
from apps.integrations.models import AIApp, PlatformConnection
from apps.integrations.webhooks import receive


@dataclass
class RestartOutcome:
    kind: str  # "connection" or "ai_app"
    id: int
    name: str
    service: str
    ok: bool
    steps: list[str] = field(default_factory=list)
    detail: str = ""
    latency_ms: int | None = None


def _forget_connection_cache(connection: PlatformConnection) -> None:
    receive._connections.pop((connection.provider, connection.webhook_secret), None)


def _restart_connection(*, org, connection: PlatformConnection) -> RestartOutcome:
    outcome = RestartOutcome(
        kind="connection",
        id=connection.pk,
        name=connection.name,
        service=connection.provider,
        ok=False,
    )
    _forget_connection_cache(connection)
    outcome.steps.append("cache_cleared")
    try:
        services.connection_set_callback(org=org, connection_id=connection.pk)
        outcome.steps.append("callback_registered")
    except ApplicationError as exc:
        outcome.detail = exc.message
        outcome.steps.append("callback_failed")
    check = services.connection_test(org=org, connection_id=connection.pk)
    outcome.steps.append("checked")
    outcome.latency_ms = check.latency_ms
    outcome.ok = check.ok and "callback_failed" not in outcome.steps
    # The callback's refusal says more than the probe when both failed.
    outcome.detail = outcome.detail or check.detail
    return outcome


def _restart_ai_app(*, org, ai_app: AIApp) -> RestartOutcome:
    outcome = RestartOutcome(
        kind="ai_app", id=ai_app.pk, name=ai_app.name, service=ai_app.provider, ok=False
    )
    selectors.ai_app_cache_invalidate(org_id=org.pk, ai_app_id=ai_app.pk)
    outcome.steps.append("cache_cleared")
    breaker_for(ai_app).reset()
    outcome.steps.append("breaker_reset")
    check = services.ai_app_test(org=org, ai_app_id=ai_app.pk)
    outcome.steps.append("checked")
    outcome.ok, outcome.detail, outcome.latency_ms = check.ok, check.detail, check.latency_ms
    return outcome


def services_restart(
    *,
    org,
    actor=None,
    connection_id: int | None = None,
    ai_app_id: int | None = None,
) -> list[RestartOutcome]:
    """Restart one connection, one AI app, or (neither given) every enabled one of ``org``."""
    if connection_id is not None and ai_app_id is not None:
        raise ApplicationError(_("Give a connection or an AI app, not both."), code="invalid")
    connections = PlatformConnection.objects.filter(org=org)
    ai_apps = AIApp.objects.filter(org=org)
    if connection_id is not None:
        connections, ai_apps = connections.filter(pk=connection_id), ai_apps.none()
        if not connections.exists():
            raise NotFoundError(_("Connection not found."))
    elif ai_app_id is not None:
        connections, ai_apps = connections.none(), ai_apps.filter(pk=ai_app_id)
        if not ai_apps.exists():
            raise NotFoundError(_("AI app not found."))
    else:
        connections = connections.exclude(status=PlatformConnection.Status.DISABLED)
        ai_apps = ai_apps.filter(enabled=True)
    outcomes = [
        *(_restart_connection(org=org, connection=c) for c in connections.order_by("id")),
        *(_restart_ai_app(org=org, ai_app=a) for a in ai_apps.order_by("id")),
    ]
    audit_record(
        action=AuditEvent.Action.SERVICES_RESTARTED,
        org=org,
        actor=actor,
        target=("integrations", connection_id or ai_app_id or "all"),
        changes={
            "targets": [f"{o.kind}:{o.id}" for o in outcomes],
            "ok": [o.ok for o in outcomes],
        },
    )
    return outcomes
