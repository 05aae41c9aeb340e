"""Hostile and careless API input answers 4xx, never 500; ids of other organisations look missing.

Each test reproduces one defect found by the outside probe (issue 18)."""

from __future__ import annotations

import pytest

from apps.integrations.models import PlatformConnection
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.conftest import client_for
from tests.integrations.factories import (
    AIAppFactory,
    IntegrationCallFactory,
    PlatformConnectionFactory,
)
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/integrations"


def _connection_body(**extra):
    return {"provider": "gewe", "name": "GeWe", "base_url": "http://gewe:2531/v2/api", **extra}


def test_connection_created_with_a_documented_status(api_client, org):
    response = api_client.post(
        f"{BASE}/connections/", _connection_body(status="disabled"), format="json"
    )
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "disabled"
    assert PlatformConnection.objects.get(org=org).status == "disabled"


def test_connection_status_other_than_unknown_or_disabled_is_refused(api_client):
    response = api_client.post(f"{BASE}/connections/", _connection_body(status="ok"), format="json")
    assert response.status_code == 400
    assert "status" in response.json()["error"]["fields"]


@pytest.mark.parametrize("extra", [[1, 2], "text", 3, [["a", "b", "c"]]])
def test_connection_and_ai_app_extra_must_be_an_object(api_client, org, extra):
    response = api_client.post(f"{BASE}/connections/", _connection_body(extra=extra), format="json")
    assert response.status_code == 400, response.content
    assert "extra" in response.json()["error"]["fields"]
    ai_app = AIAppFactory(org=org)
    response = api_client.patch(f"{BASE}/ai-apps/{ai_app.id}/", {"extra": extra}, format="json")
    assert response.status_code == 400, response.content


def test_status_schema_lists_every_value_the_api_answers(api_client):
    schema = api_client.get("/api/schema/?format=json").json()
    components = schema["components"]["schemas"]
    enum_names = [name for name in components if name.startswith("PlatformConnectionStatus")]
    values = set()
    for name in enum_names:
        values.update(components[name].get("enum", []))
    assert set(PlatformConnection.Status.values) <= values


def test_admin_add_connection_page_loads(client, org):
    user = UserFactory(is_staff=True, is_superuser=True, default_org=org)
    MembershipFactory(org=org, user=user, role=Role.OWNER)
    client.force_login(user)
    response = client.get("/admin/integrations/platformconnection/add/")
    assert response.status_code == 200


def test_call_log_filters_answer_other_org_and_missing_ids_alike(api_client, org, other_org):
    mine = PlatformConnectionFactory(org=org)
    theirs = PlatformConnectionFactory(org=other_org)
    their_app = AIAppFactory(org=other_org)
    IntegrationCallFactory(org=org, connection=mine)
    IntegrationCallFactory(org=other_org, connection=theirs, ai_app=their_app)
    for name, foreign in (("connection", theirs.id), ("ai_app", their_app.id)):
        other = api_client.get(f"{BASE}/calls/?{name}={foreign}")
        missing = api_client.get(f"{BASE}/calls/?{name}=987654321")
        assert other.status_code == missing.status_code == 200
        assert other.json()["results"] == missing.json()["results"] == []
        assert api_client.get(f"{BASE}/calls/?{name}=99999999999999999999").status_code == 400
    assert len(api_client.get(f"{BASE}/calls/?connection={mine.id}").json()["results"]) == 1


def test_set_callback_with_a_refused_token_answers_400(simulators_clean, org, member):
    connection = PlatformConnectionFactory(
        org=org, base_url=simulators_clean.urls["gewe"], token="not-a-token-the-platform-knows"
    )
    response = client_for(member, org).post(f"{BASE}/connections/{connection.id}/set-callback/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "platform_auth_failed"
