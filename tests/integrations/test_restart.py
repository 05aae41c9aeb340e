"""POST /api/v1/integrations/services/restart against the simulators (issue 22, seed 000)."""

from __future__ import annotations

import pytest

from apps.accounts.models import AuditEvent
from apps.integrations.breaker import breaker_for
from apps.orgs.models import Role
from tests.conftest import client_for
from tests.fixtures_simulators import SIM_GEWE_TOKEN, SIM_OPENAI_KEY
from tests.integrations.factories import AIAppFactory, PlatformConnectionFactory

pytestmark = pytest.mark.django_db
URL = "/api/v1/integrations/services/restart"


@pytest.fixture
def targets(org, simulators_clean):
    connection = PlatformConnectionFactory(
        org=org, base_url=simulators_clean.urls["gewe"], token=SIM_GEWE_TOKEN
    )
    ai_app = AIAppFactory(org=org, base_url=simulators_clean.urls["openai"], api_key=SIM_OPENAI_KEY)
    return connection, ai_app, simulators_clean


def _open_breaker(ai_app, settings) -> None:
    settings.AI_BREAKER_FAILURES = 1
    breaker_for(ai_app).record_failure(error="down")
    assert breaker_for(ai_app).state().state == "open"


def test_restart_everything_re_registers_resets_and_checks(targets, owner, org, settings):
    connection, ai_app, sims = targets
    _open_breaker(ai_app, settings)
    response = client_for(owner, org).post(URL, {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["ok"] is True
    by_kind = {result["kind"]: result for result in body["results"]}
    assert by_kind["connection"]["id"] == connection.id
    assert by_kind["connection"]["steps"] == ["cache_cleared", "callback_registered", "checked"]
    assert by_kind["ai_app"]["steps"] == ["cache_cleared", "breaker_reset", "checked"]
    assert breaker_for(ai_app).state().state == "closed"
    callback = sims["gewe"].requests_to("/tools/setCallback")[-1].json
    assert callback["callbackUrl"] == connection.webhook_url
    audit = AuditEvent.objects.get(org=org, action=AuditEvent.Action.SERVICES_RESTARTED)
    assert audit.actor == owner
    assert audit.changes["targets"] == [f"connection:{connection.id}", f"ai_app:{ai_app.id}"]


def test_restart_one_ai_app_only(targets, owner, org):
    connection, ai_app, sims = targets
    response = client_for(owner, org).post(URL, {"ai_app_id": ai_app.id}, format="json")
    assert response.status_code == 200
    assert [r["kind"] for r in response.json()["results"]] == ["ai_app"]
    assert sims["gewe"].requests_to("/tools/setCallback") == []


def test_a_failing_service_is_reported_not_raised(targets, owner, org):
    connection, ai_app, sims = targets
    sims["openai"].add_fault("error", status=500)
    response = client_for(owner, org).post(URL, {}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["ok"] is False
    by_kind = {result["kind"]: result for result in body["results"]}
    assert by_kind["connection"]["ok"] is True
    assert by_kind["ai_app"]["ok"] is False and by_kind["ai_app"]["detail"]


def test_another_organisations_connection_is_404(targets, owner, org, other_org):
    foreign = PlatformConnectionFactory(org=other_org)
    response = client_for(owner, org).post(URL, {"connection_id": foreign.id}, format="json")
    assert response.status_code == 404
    missing = client_for(owner, org).post(URL, {"connection_id": 987654321}, format="json")
    assert missing.status_code == 404
    assert response.json() == missing.json()
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.SERVICES_RESTARTED).exists()


def test_both_targets_at_once_is_400(targets, owner, org):
    connection, ai_app, _sims = targets
    response = client_for(owner, org).post(
        URL, {"connection_id": connection.id, "ai_app_id": ai_app.id}, format="json"
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


@pytest.mark.parametrize("role", [Role.MANAGER, Role.AGENT, Role.VIEWER])
def test_only_admins_and_owners_restart(targets, org, make_member, role):
    response = client_for(make_member(role), org).post(URL, {}, format="json")
    assert response.status_code == 403


def test_the_console_restarts_selected_integrations_in_chinese(targets, owner, org, settings):
    """The console's restart actions run the same audited service as the API and report each
    target in words, with no step codes."""
    from django.test import Client

    connection, ai_app, sims = targets
    _open_breaker(ai_app, settings)
    client = Client(HTTP_ACCEPT_LANGUAGE="zh-hans")
    client.force_login(owner)
    page = client.post(
        "/admin/integrations/platformconnection/",
        {"action": "restart_connections", "_selected_action": [connection.id]},
        follow=True,
    ).content.decode()
    assert f"{connection.name} 已重启，工作正常" in page
    assert "已重新注册回调" in page and "callback_registered" not in page
    assert sims["gewe"].requests_to("/tools/setCallback")

    page = client.post(
        "/admin/integrations/aiapp/",
        {"action": "restart_ai_apps", "_selected_action": [ai_app.id]},
        follow=True,
    ).content.decode()
    assert f"{ai_app.name} 已重启，工作正常" in page and "熔断器已关闭" in page
    assert breaker_for(ai_app).state().state == "closed"
    assert (
        AuditEvent.objects.filter(org=org, action=AuditEvent.Action.SERVICES_RESTARTED).count() == 2
    )
