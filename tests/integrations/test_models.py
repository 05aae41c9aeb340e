"""Model invariants of the integrations app."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from apps.integrations.models import AIApp, PlatformConnection
from tests.integrations.factories import AIAppFactory, PlatformConnectionFactory

pytestmark = pytest.mark.django_db


def test_webhook_url_per_provider(settings, org):
    settings.PUBLIC_BASE_URL = "https://sales.example.com"
    gewe = PlatformConnectionFactory(org=org)
    ecloud = PlatformConnectionFactory(org=org, provider=PlatformConnection.Provider.ECLOUD)
    assert gewe.webhook_url == (
        f"https://sales.example.com/api/v1/integrations/gewe/webhook/{gewe.webhook_secret}/"
    )
    assert ecloud.webhook_url == (
        f"https://sales.example.com/api/v1/integrations/ecloud/callback/{ecloud.webhook_secret}/"
    )


def test_webhook_secrets_are_random_and_long(org):
    first, second = PlatformConnectionFactory(org=org), PlatformConnectionFactory(org=org)
    assert first.webhook_secret != second.webhook_secret
    assert len(first.webhook_secret) >= 40


def test_connection_name_unique_per_org_only(org, other_org):
    PlatformConnectionFactory(org=org, name="Main")
    PlatformConnectionFactory(org=other_org, name="Main")
    with pytest.raises(IntegrityError), transaction.atomic():
        PlatformConnectionFactory(org=org, name="Main")


def test_unknown_capability_is_invalid(org):
    connection = PlatformConnectionFactory.build(org=org, capabilities=["moments", "teleport"])
    with pytest.raises(ValidationError) as excinfo:
        connection.full_clean()
    assert "capabilities" in excinfo.value.message_dict
    connection.capabilities = ["moments"]
    connection.full_clean()
    assert connection.has_capability("moments")


def test_one_default_ai_app_per_org_and_purpose(org, other_org):
    AIAppFactory(org=org, is_default=True)
    AIAppFactory(org=org, is_default=True, purpose=AIApp.Purpose.INTENT)
    AIAppFactory(org=other_org, is_default=True)
    AIAppFactory(org=org, is_default=False)
    with pytest.raises(IntegrityError), transaction.atomic():
        AIAppFactory(org=org, is_default=True)


def test_openai_app_needs_a_model(org):
    app = AIAppFactory.build(org=org, model="")
    with pytest.raises(ValidationError) as excinfo:
        app.full_clean()
    assert "model" in excinfo.value.message_dict
    AIAppFactory.build(org=org, provider=AIApp.Provider.DIFY, model="").full_clean()


@pytest.mark.parametrize(
    "url, ok",
    [
        ("http://gewechat:2531/v2/api", True),
        ("https://api.example.com/gewe/v2/api", True),
        ("http://127.0.0.1:3030/v1", True),
        ("ftp://example.com", False),
        ("not a url", False),
        ("http:///v1", False),
    ],
)
def test_base_url_accepts_internal_hosts_only_over_http(org, url, ok):
    connection = PlatformConnectionFactory.build(org=org, base_url=url)
    if ok:
        connection.full_clean()
    else:
        with pytest.raises(ValidationError):
            connection.full_clean()
