"""The integrations API: CRUD with masked write-only secrets, roles, tenancy, tests, stats."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.integrations import services
from apps.integrations.models import AIApp, IntegrationCall, PlatformConnection
from apps.orgs.models import Role
from tests.conftest import client_for
from tests.fixtures_simulators import SIM_GEWE_TOKEN, SIM_OPENAI_KEY
from tests.integrations.factories import (
    AIAppFactory,
    IntegrationCallFactory,
    PlatformConnectionFactory,
)

pytestmark = pytest.mark.django_db

BASE = "/api/v1/integrations"


@pytest.fixture(autouse=True)
def _no_retry_sleep(monkeypatch):
    monkeypatch.setitem(services.CLIENT_DEFAULTS, "sleep", lambda seconds: None)


@pytest.fixture
def manager_client(make_member, org):
    return client_for(make_member(Role.MANAGER), org)


@pytest.fixture
def agent_client(make_member, org):
    return client_for(make_member(Role.AGENT), org)


@pytest.fixture
def viewer_client(make_member, org):
    return client_for(make_member(Role.VIEWER), org)


# -- connections ---------------------------------------------------------------------------


def test_create_connection_returns_masked_token_and_absolute_webhook_url(api_client, org, settings):
    settings.PUBLIC_BASE_URL = "https://sales.example.com"
    response = api_client.post(  # an admin: the webhook URL is theirs to see
        f"{BASE}/connections/",
        {
            "provider": "gewe",
            "name": "Main GeWe",
            "base_url": "http://gewechat:2531/v2/api",
            "token": "9c1f4e2ab7d34f0c8e6b5a4d3c2b1a09",
            "capabilities": ["moments"],
        },
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["token"] == "****1a09"
    assert data["has_token"] is True
    assert data["password"] == ""
    connection = PlatformConnection.objects.get(org=org)
    assert data["webhook_url"] == (
        f"https://sales.example.com/api/v1/integrations/gewe/webhook/{connection.webhook_secret}/"
    )
    assert connection.token == "9c1f4e2ab7d34f0c8e6b5a4d3c2b1a09"
    assert "9c1f4e2ab7d34f0c8e6b5a4d3c2b1a09" not in response.content.decode()


def test_ecloud_webhook_url(api_client):
    response = api_client.post(
        f"{BASE}/connections/",
        {"provider": "ecloud", "name": "E", "base_url": "http://10.0.0.5:9899"},
    )
    assert response.status_code == 201
    assert "/api/v1/integrations/ecloud/callback/" in response.json()["webhook_url"]


def test_connection_validation_errors(manager_client):
    response = manager_client.post(
        f"{BASE}/connections/",
        {"provider": "wechaty", "name": "", "base_url": "ftp://x", "capabilities": ["teleport"]},
    )
    assert response.status_code == 400
    fields = response.json()["error"]["fields"]
    assert {"provider", "name", "base_url", "capabilities"} <= set(fields)


def test_duplicate_connection_name_answers_400(manager_client, org):
    PlatformConnectionFactory(org=org, name="Main")
    response = manager_client.post(
        f"{BASE}/connections/",
        {"provider": "gewe", "name": "Main", "base_url": "http://localhost:2531/v2/api"},
    )
    assert response.status_code == 400
    assert "name" in response.json()["error"]["fields"]


def test_list_connections_masks_and_is_org_scoped(
    api_client, org, other_org, django_assert_num_queries
):
    for i in range(3):
        PlatformConnectionFactory(org=org, token=f"secret-token-{i}-abcdef")
    PlatformConnectionFactory(org=other_org)
    # Membership resolution + count + page; independent of the number of rows.
    with django_assert_num_queries(3):
        response = api_client.get(f"{BASE}/connections/")
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 3
    for item in results:
        assert item["token"].startswith("****")
        assert "secret-token" not in str(item)


def test_update_keeps_token_when_omitted_or_blank(manager_client, org):
    connection = PlatformConnectionFactory(org=org, token="keep-me-please-0000")
    url = f"{BASE}/connections/{connection.id}/"
    assert manager_client.patch(url, {"name": "Renamed"}).status_code == 200
    assert manager_client.patch(url, {"token": ""}).status_code == 200
    connection.refresh_from_db()
    assert (connection.name, connection.token) == ("Renamed", "keep-me-please-0000")
    response = manager_client.patch(url, {"token": "brand-new-token-1111"})
    assert response.json()["token"] == "****1111"
    connection.refresh_from_db()
    assert connection.token == "brand-new-token-1111"


def test_provider_cannot_change(manager_client, org):
    connection = PlatformConnectionFactory(org=org)
    response = manager_client.patch(f"{BASE}/connections/{connection.id}/", {"provider": "ecloud"})
    assert response.status_code == 400
    assert "provider" in response.json()["error"]["fields"]


def test_disable_connection(manager_client, org):
    connection = PlatformConnectionFactory(org=org)
    response = manager_client.patch(f"{BASE}/connections/{connection.id}/", {"status": "disabled"})
    assert response.json()["status"] == "disabled"
    response = manager_client.patch(f"{BASE}/connections/{connection.id}/", {"status": "ok"})
    assert response.status_code == 400  # only disabled/unknown can be set by hand


def test_rotate_secret_endpoint(api_client, org):
    connection = PlatformConnectionFactory(org=org)
    old = connection.webhook_url
    response = api_client.post(f"{BASE}/connections/{connection.id}/rotate-secret/")
    assert response.status_code == 200
    assert response.json()["webhook_url"] != old
    connection.refresh_from_db()
    assert response.json()["webhook_url"] == connection.webhook_url


def test_connection_test_endpoint_against_simulator(manager_client, org, simulators_clean):
    connection = PlatformConnectionFactory(
        org=org, base_url=simulators_clean.urls["gewe"], token=SIM_GEWE_TOKEN
    )
    response = manager_client.post(f"{BASE}/connections/{connection.id}/test/")
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] is True and data["error_class"] is None
    assert isinstance(data["latency_ms"], int)
    connection.refresh_from_db()
    assert connection.status == "ok"

    bad = PlatformConnectionFactory(org=org, base_url=simulators_clean.urls["gewe"], token="nope")
    data = manager_client.post(f"{BASE}/connections/{bad.id}/test/").json()
    assert data["ok"] is False and data["error_class"] == "AuthError"


def test_set_callback_endpoint(api_client, org, simulators_clean):
    connection = PlatformConnectionFactory(
        org=org, base_url=simulators_clean.urls["gewe"], token=SIM_GEWE_TOKEN
    )
    response = api_client.post(f"{BASE}/connections/{connection.id}/set-callback/")
    assert response.status_code == 200
    sent = simulators_clean["gewe"].requests_to("/tools/setCallback")[-1].json
    assert sent["callbackUrl"] == response.json()["webhook_url"]


def test_delete_connection(manager_client, org):
    connection = PlatformConnectionFactory(org=org)
    assert manager_client.delete(f"{BASE}/connections/{connection.id}/").status_code == 204
    assert not PlatformConnection.objects.filter(id=connection.id).exists()


# -- AI apps -------------------------------------------------------------------------------


def test_create_ai_app_masks_key(manager_client, org):
    response = manager_client.post(
        f"{BASE}/ai-apps/",
        {
            "provider": "openai",
            "name": "Qwen",
            "base_url": "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "api_key": "sk-0123456789abcdef",
            "model": "qwen-plus",
            "temperature": "0.7",
            "max_tokens": 512,
            "purpose": "reply",
            "is_default": True,
        },
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["api_key"] == "****cdef"
    assert data["has_api_key"] is True
    assert AIApp.objects.get(org=org).api_key == "sk-0123456789abcdef"


def test_openai_app_without_model_is_rejected(manager_client):
    response = manager_client.post(
        f"{BASE}/ai-apps/",
        {"provider": "openai", "name": "X", "base_url": "http://localhost/v1", "api_key": "sk-1"},
    )
    assert response.status_code == 400
    assert "model" in response.json()["error"]["fields"]


def test_ai_app_default_moves(manager_client, org):
    first = AIAppFactory(org=org, is_default=True)
    second = AIAppFactory(org=org)
    response = manager_client.patch(f"{BASE}/ai-apps/{second.id}/", {"is_default": True})
    assert response.status_code == 200
    first.refresh_from_db()
    assert first.is_default is False


def test_ai_app_list_query_count(api_client, org, django_assert_num_queries):
    AIAppFactory.create_batch(4, org=org)
    with django_assert_num_queries(3):
        response = api_client.get(f"{BASE}/ai-apps/")
    assert len(response.json()["results"]) == 4
    assert all(item["api_key"].startswith("****") for item in response.json()["results"])


@pytest.mark.parametrize("streaming", [False, True])
def test_ai_app_test_endpoint_runs_a_real_turn(manager_client, org, simulators_clean, streaming):
    app = AIAppFactory(
        org=org,
        base_url=simulators_clean.urls["openai"],
        api_key=SIM_OPENAI_KEY,
        streaming=streaming,
    )
    response = manager_client.post(f"{BASE}/ai-apps/{app.id}/test/", {"prompt": "are you there"})
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] is True
    assert data["text"] == "echo: are you there"
    assert data["input_tokens"] > 0 and data["output_tokens"] > 0
    assert IntegrationCall.objects.filter(ai_app=app, ok=True).count() == 1


# -- FastGPT workflows ---------------------------------------------------------------------


def test_fastgpt_workflows_register_list_delete(manager_client, org):
    AIAppFactory(org=org)  # an OpenAI app: not a workflow
    response = manager_client.post(
        f"{BASE}/fastgpt/workflows/",
        {
            "name": "Sales flow",
            "base_url": "http://fastgpt:3000/api",
            "api_key": "fastgpt-abcdefghijkl",
            "app_id": "65f1c0ffee",
            "provider": "openai",  # ignored: always FastGPT
        },
    )
    assert response.status_code == 201, response.json()
    assert response.json()["provider"] == "fastgpt"
    assert response.json()["api_key"] == "****ijkl"
    listed = manager_client.get(f"{BASE}/fastgpt/workflows/").json()["results"]
    assert [item["name"] for item in listed] == ["Sales flow"]
    workflow_id = listed[0]["id"]
    assert manager_client.delete(f"{BASE}/fastgpt/workflows/{workflow_id}/").status_code == 204
    assert not AIApp.objects.filter(id=workflow_id).exists()


def test_fastgpt_workflows_do_not_expose_other_providers(manager_client, org):
    app = AIAppFactory(org=org)
    assert manager_client.get(f"{BASE}/fastgpt/workflows/{app.id}/").status_code == 404
    assert manager_client.delete(f"{BASE}/fastgpt/workflows/{app.id}/").status_code == 404


# -- roles ---------------------------------------------------------------------------------


@pytest.mark.parametrize("client_name", ["agent_client", "viewer_client"])
def test_members_below_manager_read_but_cannot_write(request, client_name, org):
    client = request.getfixturevalue(client_name)
    connection = PlatformConnectionFactory(org=org)
    app = AIAppFactory(org=org)
    assert client.get(f"{BASE}/connections/").status_code == 200
    assert client.get(f"{BASE}/connections/{connection.id}/").status_code == 200
    assert client.get(f"{BASE}/ai-apps/{app.id}/").status_code == 200
    assert client.get(f"{BASE}/overview/").status_code == 200
    assert client.get(f"{BASE}/gewe/stats/").status_code == 200
    for method, url in [
        ("post", f"{BASE}/connections/"),
        ("patch", f"{BASE}/connections/{connection.id}/"),
        ("delete", f"{BASE}/connections/{connection.id}/"),
        ("post", f"{BASE}/connections/{connection.id}/test/"),
        ("post", f"{BASE}/connections/{connection.id}/rotate-secret/"),
        ("post", f"{BASE}/connections/{connection.id}/set-callback/"),
        ("post", f"{BASE}/ai-apps/"),
        ("patch", f"{BASE}/ai-apps/{app.id}/"),
        ("delete", f"{BASE}/ai-apps/{app.id}/"),
        ("post", f"{BASE}/ai-apps/{app.id}/test/"),
        ("post", f"{BASE}/fastgpt/workflows/"),
        ("post", f"{BASE}/services/sync/"),
    ]:
        assert getattr(client, method)(url, {}).status_code == 403, (method, url)


def test_anonymous_is_rejected(anon_client):
    assert anon_client.get(f"{BASE}/connections/").status_code == 401
    assert anon_client.get(f"{BASE}/overview/").status_code == 401


# -- tenancy -------------------------------------------------------------------------------


def _object_endpoints(connection, app, workflow, call):
    return [
        ("get", f"{BASE}/connections/{connection.id}/"),
        ("patch", f"{BASE}/connections/{connection.id}/"),
        ("put", f"{BASE}/connections/{connection.id}/"),
        ("delete", f"{BASE}/connections/{connection.id}/"),
        ("post", f"{BASE}/connections/{connection.id}/test/"),
        ("post", f"{BASE}/connections/{connection.id}/rotate-secret/"),
        ("post", f"{BASE}/connections/{connection.id}/set-callback/"),
        ("get", f"{BASE}/ai-apps/{app.id}/"),
        ("patch", f"{BASE}/ai-apps/{app.id}/"),
        ("put", f"{BASE}/ai-apps/{app.id}/"),
        ("delete", f"{BASE}/ai-apps/{app.id}/"),
        ("post", f"{BASE}/ai-apps/{app.id}/test/"),
        ("get", f"{BASE}/fastgpt/workflows/{workflow.id}/"),
        ("delete", f"{BASE}/fastgpt/workflows/{workflow.id}/"),
        ("post", f"{BASE}/fastgpt/workflows/{workflow.id}/test/"),
        ("get", f"{BASE}/calls/{call.id}/"),
    ]


def test_every_object_endpoint_answers_404_for_another_org(api_client, other_org):
    connection = PlatformConnectionFactory(org=other_org, name="theirs")
    app = AIAppFactory(org=other_org, name="their app")
    workflow = AIAppFactory(org=other_org, provider=AIApp.Provider.FASTGPT, model="")
    call = IntegrationCallFactory(org=other_org)
    for method, url in _object_endpoints(connection, app, workflow, call):
        response = getattr(api_client, method)(url, {"name": "stolen"})
        assert response.status_code == 404, (method, url, response.status_code)
    connection.refresh_from_db()
    app.refresh_from_db()
    assert connection.name == "theirs" and app.name == "their app"


def test_lists_and_aggregates_never_include_another_org(api_client, org, other_org):
    PlatformConnectionFactory(org=other_org)
    AIAppFactory(org=other_org)
    AIAppFactory(org=other_org, provider=AIApp.Provider.FASTGPT, model="")
    IntegrationCallFactory(org=other_org)
    for url in ("connections/", "ai-apps/", "fastgpt/workflows/", "calls/"):
        assert api_client.get(f"{BASE}/{url}").json()["results"] == [], url
    assert api_client.get(f"{BASE}/gewe/stats/").json()["total_requests"] == 0
    overview = api_client.get(f"{BASE}/overview/").json()
    assert overview["total_integrations"] == 0


def test_organization_header_of_a_foreign_org_is_refused(member, other_org):
    response = client_for(member, other_org).get(f"{BASE}/connections/")
    assert response.status_code in (403, 404)


# -- call log, stats, health, overview, sync -----------------------------------------------


def test_call_log_list_filters(api_client, org, django_assert_num_queries):
    IntegrationCallFactory(org=org, service="gewe", ok=True)
    IntegrationCallFactory(org=org, service="openai", ok=False, error_class="RateLimited")
    with django_assert_num_queries(3):
        response = api_client.get(f"{BASE}/calls/", {"ok": "false"})
    results = response.json()["results"]
    assert [(r["service"], r["error_class"]) for r in results] == [("openai", "RateLimited")]


def test_gewe_stats_aggregate_the_window(api_client, org):
    now = timezone.now()
    for latency in (100, 200, 300):
        IntegrationCallFactory(org=org, service="gewe", operation="send_text", latency_ms=latency)
    IntegrationCallFactory(
        org=org, service="gewe", operation="check_online", ok=False, error_class="Unavailable",
        http_status=500, latency_ms=400,
    )  # fmt: skip
    IntegrationCallFactory(org=org, service="gewe", at=now - timedelta(hours=30))  # outside 24h
    IntegrationCallFactory(org=org, service="fastgpt")  # another service
    data = api_client.get(f"{BASE}/gewe/stats/").json()
    assert data["service_name"] == "GeWe"
    assert data["total_requests"] == 4
    assert data["successful_requests"] == 3 and data["failed_requests"] == 1
    assert data["success_rate"] == 75.0 and data["error_rate"] == 25.0
    assert data["average_response_time"] == 0.25
    assert data["max_response_time"] == 0.4
    assert data["errors"] == {"Unavailable": 1}
    assert data["operations"][0] == {
        "operation": "send_text",
        "total_requests": 3,
        "failed_requests": 0,
        "average_response_time": 0.2,
    }
    assert api_client.get(f"{BASE}/gewe/stats/", {"hours": 48}).json()["total_requests"] == 5


def test_stats_of_an_empty_window_and_bad_hours(api_client):
    data = api_client.get(f"{BASE}/fastgpt/stats/").json()
    assert data["total_requests"] == 0 and data["success_rate"] is None
    assert api_client.get(f"{BASE}/fastgpt/stats/", {"hours": 0}).status_code == 400
    assert api_client.get(f"{BASE}/teleport/stats/").status_code == 404


def test_openai_stats_include_dashscope_calls(api_client, org):
    IntegrationCallFactory(org=org, service="openai")
    IntegrationCallFactory(org=org, service="dashscope")
    assert api_client.get(f"{BASE}/openai/stats/").json()["total_requests"] == 2


def test_gewe_health_reflects_last_checks(api_client, org):
    data = api_client.get(f"{BASE}/gewe/health/").json()
    assert data["configured"] is False and data["healthy"] is False
    ok = PlatformConnectionFactory(org=org, status="ok", last_latency_ms=800,
                                   last_checked_at=timezone.now())  # fmt: skip
    data = api_client.get(f"{BASE}/gewe/health/").json()
    assert data["healthy"] is True and data["response_time"] == 0.8
    assert [item["id"] for item in data["items"]] == [ok.id]
    PlatformConnectionFactory(org=org, status="error", last_latency_ms=100)
    assert api_client.get(f"{BASE}/gewe/health/").json()["healthy"] is False


def test_fastgpt_health_lists_fastgpt_apps(api_client, org):
    app = AIAppFactory(org=org, provider="fastgpt", model="", last_check_ok=True,
                       last_latency_ms=1500, last_checked_at=timezone.now())  # fmt: skip
    AIAppFactory(org=org)  # openai, not listed
    data = api_client.get(f"{BASE}/fastgpt/health/").json()
    assert data["service_name"] == "FastGPT"
    assert data["healthy"] is True
    assert [item["id"] for item in data["items"]] == [app.id]


def test_overview_shape(api_client, org):
    PlatformConnectionFactory(org=org, status="ok")
    AIAppFactory(org=org, provider="fastgpt", model="", last_check_ok=False)
    IntegrationCallFactory(org=org, service="gewe")
    data = api_client.get(f"{BASE}/overview/").json()
    assert set(data["services"]) == {"gewe", "ecloud", "openai", "fastgpt", "dify"}
    assert data["gewe_status"]["stats"]["total_requests"] == 1
    assert data["fastgpt_status"]["healthy"] is False
    assert data["total_integrations"] == 2
    assert data["active_integrations"] == 1


def test_services_sync_checks_live(manager_client, org, simulators_clean):
    connection = PlatformConnectionFactory(
        org=org, base_url=simulators_clean.urls["gewe"], token=SIM_GEWE_TOKEN
    )
    app = AIAppFactory(org=org, base_url=simulators_clean.urls["openai"], api_key=SIM_OPENAI_KEY)
    data = manager_client.post(f"{BASE}/services/sync/").json()
    assert data["gewe_status"]["healthy"] is True
    assert data["services"]["openai"]["healthy"] is True
    assert data["active_integrations"] == 2
    assert data["last_sync"] is not None
    connection.refresh_from_db()
    app.refresh_from_db()
    assert connection.status == "ok" and app.last_check_ok is True
