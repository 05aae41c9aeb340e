"""Admin of the integrations app: masked write-only secrets, test actions, org scoping."""

from __future__ import annotations

import pytest

from apps.accounts.models import AuditEvent
from apps.integrations import services
from apps.integrations.models import AIApp, PlatformConnection
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.fixtures_simulators import SIM_GEWE_TOKEN, SIM_OPENAI_KEY
from tests.integrations.factories import (
    AIAppFactory,
    IntegrationCallFactory,
    PlatformConnectionFactory,
)
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db

ADMIN = "/admin/integrations"


@pytest.fixture(autouse=True)
def _no_retry_sleep(monkeypatch):
    monkeypatch.setitem(services.CLIENT_DEFAULTS, "sleep", lambda seconds: None)


@pytest.fixture
def staff_manager(org):
    """An admin of the organisation (integrations are theirs); no is_staff flag needed."""
    user = UserFactory(default_org=org)
    MembershipFactory(org=org, user=user, role=Role.ADMIN)
    return user


@pytest.fixture
def staff_client(client, staff_manager):
    client.force_login(staff_manager)
    return client


@pytest.mark.parametrize("role", [Role.MANAGER, Role.VIEWER])
def test_managers_and_viewers_read_connections_without_secrets(client, org, role):
    user = UserFactory(default_org=org)
    MembershipFactory(org=org, user=user, role=role)
    client.force_login(user)
    connection = PlatformConnectionFactory(
        org=org, token="read-only-never-8888", password="pw-9999"
    )
    app = AIAppFactory(org=org, api_key="sk-read-only-6666")
    for url in (
        f"{ADMIN}/platformconnection/{connection.id}/change/",
        f"{ADMIN}/aiapp/{app.id}/change/",
    ):
        page = client.get(url)
        assert page.status_code == 200
        text = page.content.decode()
        for secret in ("read-only-never-8888", "pw-9999", "sk-read-only-6666"):
            assert secret not in text
    page = client.get(f"{ADMIN}/platformconnection/{connection.id}/change/").content.decode()
    assert "****8888" in page
    secret = connection.webhook_url.rstrip("/").split("/")[-1]
    assert secret not in page  # the webhook URL's token is a credential too
    response = client.post(f"{ADMIN}/platformconnection/{connection.id}/change/", {"name": "x"})
    assert response.status_code == 403
    assert client.get(f"{ADMIN}/platformconnection/add/").status_code == 403


def test_connection_list_and_form_never_show_the_secret(staff_client, org):
    connection = PlatformConnectionFactory(org=org, token="admin-visible-never-7777")
    listing = staff_client.get(f"{ADMIN}/platformconnection/").content.decode()
    assert "****7777" in listing
    assert "admin-visible-never-7777" not in listing
    page = staff_client.get(f"{ADMIN}/platformconnection/{connection.id}/change/").content.decode()
    assert "admin-visible-never-7777" not in page
    assert "****7777" in page  # in the "keep" help text
    assert connection.webhook_url in page


def test_ai_app_list_masks_the_key(staff_client, org):
    AIAppFactory(org=org, api_key="sk-admin-secret-5555")
    listing = staff_client.get(f"{ADMIN}/aiapp/").content.decode()
    assert "****5555" in listing and "sk-admin-secret-5555" not in listing


def test_change_form_keeps_blank_secret_and_saves_through_services(staff_client, org):
    connection = PlatformConnectionFactory(org=org, token="keep-this-token-1234", name="Old")
    response = staff_client.post(
        f"{ADMIN}/platformconnection/{connection.id}/change/",
        {
            "org": org.id,
            "name": "New name",
            "base_url": "http://gewechat:2531/v2/api",
            "token": "",
            "account": "",
            "password": "",
            "extra": "{}",
            "status": "unknown",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    connection.refresh_from_db()
    assert (connection.name, connection.token) == ("New name", "keep-this-token-1234")
    assert not AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIALS_CHANGED).exists()

    staff_client.post(
        f"{ADMIN}/platformconnection/{connection.id}/change/",
        {
            "org": org.id,
            "name": "New name",
            "base_url": "http://gewechat:2531/v2/api",
            "token": "replaced-token-9999",
            "account": "",
            "password": "",
            "extra": "{}",
            "status": "unknown",
        },
    )
    connection.refresh_from_db()
    assert connection.token == "replaced-token-9999"
    assert AuditEvent.objects.filter(action=AuditEvent.Action.CREDENTIALS_CHANGED).count() == 1


def test_add_ai_app_in_admin(staff_client, org):
    response = staff_client.post(
        f"{ADMIN}/aiapp/add/",
        {
            "org": org.id,
            "provider": "openai",
            "name": "Admin app",
            "base_url": "http://localhost:3030/v1",
            "api_key": "sk-added-in-admin-1111",
            "model": "qwen-plus",
            "purpose": "reply",
            "enabled": "on",
            "extra": "{}",
            "system_prompt": "",
            "app_id": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    app = AIApp.objects.get(org=org, name="Admin app")
    assert app.api_key == "sk-added-in-admin-1111"


def test_ai_app_extra_settings_have_fields_of_their_own(staff_client, org):
    """The output-cap variable and the OpenAI-compatible flavour are form fields stored in
    ``extra`` (other keys there are kept); a bad variable name is refused in words."""
    app = AIAppFactory(org=org, provider="fastgpt", extra={"body": {"top_p": 0.5}})
    form = {
        "org": org.id,
        "name": app.name,
        "base_url": app.base_url,
        "api_key": "",
        "model": "",
        "purpose": "reply",
        "enabled": "on",
        "extra": '{"body": {"top_p": 0.5}}',
        "system_prompt": "",
        "app_id": "",
        "max_tokens_variable": "answer_cap",
        "flavor": "",
    }
    url = f"{ADMIN}/aiapp/{app.id}/change/"
    assert 'name="max_tokens_variable"' in staff_client.get(url).content.decode()
    response = staff_client.post(url, form)
    assert response.status_code == 302, response.content.decode()[:3000]
    app.refresh_from_db()
    assert app.extra == {"body": {"top_p": 0.5}, "max_tokens_variable": "answer_cap"}
    assert services._max_tokens_variable(app) == "answer_cap"

    page = staff_client.get(url).content.decode()
    assert 'value="answer_cap"' in page

    response = staff_client.post(url, {**form, "max_tokens_variable": "cap; drop"})
    assert response.status_code == 200
    assert "letters, digits, underscores or hyphens" in response.content.decode()
    staff_client.post(url, {**form, "max_tokens_variable": ""})
    app.refresh_from_db()
    assert app.extra == {"body": {"top_p": 0.5}}


def test_test_actions_call_the_simulators(staff_client, org, simulators_clean):
    connection = PlatformConnectionFactory(
        org=org, base_url=simulators_clean.urls["gewe"], token=SIM_GEWE_TOKEN
    )
    app = AIAppFactory(org=org, base_url=simulators_clean.urls["openai"], api_key=SIM_OPENAI_KEY)
    response = staff_client.post(
        f"{ADMIN}/platformconnection/",
        {"action": "test_connections", "_selected_action": [connection.id]},
        follow=True,
    )
    assert "OK in" in response.content.decode()
    connection.refresh_from_db()
    assert connection.status == PlatformConnection.Status.OK

    response = staff_client.post(
        f"{ADMIN}/aiapp/",
        {"action": "test_ai_apps", "_selected_action": [app.id]},
        follow=True,
    )
    assert "echo:" in response.content.decode()
    app.refresh_from_db()
    assert app.last_check_ok is True


def test_rotate_action(staff_client, org):
    connection = PlatformConnectionFactory(org=org)
    old = connection.webhook_secret
    staff_client.post(
        f"{ADMIN}/platformconnection/",
        {"action": "rotate_webhook_secrets", "_selected_action": [connection.id]},
    )
    connection.refresh_from_db()
    assert connection.webhook_secret != old


def test_call_log_is_read_only_with_date_hierarchy(staff_client, org):
    call = IntegrationCallFactory(org=org, operation="send_text_unique")
    listing = staff_client.get(f"{ADMIN}/integrationcall/")
    assert listing.status_code == 200
    assert "send_text_unique" in listing.content.decode()
    assert staff_client.get(f"{ADMIN}/integrationcall/add/").status_code == 403
    detail = staff_client.get(f"{ADMIN}/integrationcall/{call.id}/change/")
    assert detail.status_code == 200  # view-only
    staff_client.post(f"{ADMIN}/integrationcall/{call.id}/change/", {"operation": "x"})
    call.refresh_from_db()
    assert call.operation == "send_text_unique"
    filtered = staff_client.get(f"{ADMIN}/integrationcall/", {"service": "gewe", "ok__exact": "1"})
    assert filtered.status_code == 200


def test_staff_sees_only_their_orgs_rows(staff_client, other_org):
    connection = PlatformConnectionFactory(org=other_org, name="Foreign connection")
    app = AIAppFactory(org=other_org, name="Foreign app")
    call = IntegrationCallFactory(org=other_org, operation="foreign_operation")
    assert (
        "Foreign connection"
        not in staff_client.get(f"{ADMIN}/platformconnection/").content.decode()
    )
    assert "Foreign app" not in staff_client.get(f"{ADMIN}/aiapp/").content.decode()
    assert "foreign_operation" not in staff_client.get(f"{ADMIN}/integrationcall/").content.decode()
    for url in (
        f"{ADMIN}/platformconnection/{connection.id}/change/",
        f"{ADMIN}/aiapp/{app.id}/change/",
        f"{ADMIN}/integrationcall/{call.id}/change/",
    ):
        assert staff_client.get(url).status_code in (302, 403, 404), url
    # An action posted with a foreign id does nothing to it.
    old = connection.webhook_secret
    staff_client.post(
        f"{ADMIN}/platformconnection/",
        {"action": "rotate_webhook_secrets", "_selected_action": [connection.id]},
    )
    connection.refresh_from_db()
    assert connection.webhook_secret == old
