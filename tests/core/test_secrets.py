"""No credential in plaintext: masks, provider error text, logs, the database and API answers."""

from __future__ import annotations

import io
import logging

import pytest
from django.db import connection as db_connection

from apps.core.crypto import mask_secret
from apps.core.secrets import SecretMaskingFilter, mask_url, redact, register_secret
from apps.integrations.clients.errors import AuthError
from apps.integrations.models import PlatformConnection
from apps.orgs.models import Role
from tests.conftest import client_for
from tests.integrations.factories import PlatformConnectionFactory

CANARY = "canary-Token-7f3a9c2e51d84b06"


def test_mask_shows_at_most_four_characters_and_none_of_a_short_secret():
    assert mask_secret("") == ""
    assert mask_secret("abcdefghi") == "****"  # 9 characters: nothing of it
    assert mask_secret("abcdefghijk") == "****"  # 11
    masked = mask_secret("sk-abcdefghijkl")
    assert masked == "****ijkl"
    assert sum(ch != "*" for ch in masked) <= 4


def test_redact_replaces_given_and_known_secrets():
    assert redact(f"X-GEWE-TOKEN={CANARY} 不可用或已过期", [CANARY]) == (
        "X-GEWE-TOKEN=****4b06 不可用或已过期"
    )
    register_secret("known-secret-value-123456")
    assert "known-secret-value-123456" not in redact("oops known-secret-value-123456 leaked")


def test_mask_url_hides_the_access_token():
    url = "https://oapi.dingtalk.com/robot/send?access_token=abcdef0123456789abcdef"
    masked = mask_url(url)
    assert "abcdef0123456789abcdef" not in masked
    assert masked.startswith("https://oapi.dingtalk.com/robot/send?access_token=****")


def test_log_filter_masks_known_secrets_in_messages_and_tracebacks():
    register_secret(CANARY)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(SecretMaskingFilter())
    log = logging.getLogger("tests.secrets")
    log.addHandler(handler)
    try:
        log.warning("token is %s", CANARY)
        try:
            raise RuntimeError(f"boom {CANARY}")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    output = stream.getvalue()
    assert "token is ****4b06" in output
    assert "RuntimeError" in output
    assert CANARY not in output


def test_every_configured_log_handler_masks_secrets():
    handlers = logging.getLogger().handlers
    configured = [h for h in handlers if any(isinstance(f, SecretMaskingFilter) for f in h.filters)]
    assert configured, "the root logger's handlers from LOGGING carry the secret filter"


def _database_text() -> str:
    """Every row of every table as raw text (what a database dump would show)."""
    chunks = []
    with db_connection.cursor() as cursor:
        for table in db_connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from Django
            for row in cursor.fetchall():
                chunks.append(repr(row))
    return "\n".join(chunks)


@pytest.mark.django_db(transaction=False)
def test_canary_token_echoed_by_the_platform_is_nowhere_in_plaintext(
    simulators_clean, org, owner, make_member, settings
):
    """GeWe answers ``X-GEWE-TOKEN=<token> 不可用或已过期`` for an unknown token: test the
    connection, set the callback and run the health check, then grep the database, the logs and
    every API answer for the token."""
    settings.CELERY_TASK_ALWAYS_EAGER = True
    connection = PlatformConnectionFactory(
        org=org, base_url=simulators_clean.urls["gewe"], token=CANARY
    )
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    handler.addFilter(SecretMaskingFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    answers = []
    try:
        admin = client_for(owner, org)
        viewer = client_for(make_member(Role.VIEWER), org)
        base = f"/api/v1/integrations/connections/{connection.id}/"
        response = admin.post(base + "test/")
        assert response.status_code == 200
        assert response.json()["ok"] is False
        answers.append(response.content.decode())
        response = admin.post(base + "set-callback/")
        assert response.status_code == 400, response.content
        answers.append(response.content.decode())

        from apps.monitoring.checks import check_connection

        sample = check_connection(org_id=org.id, connection_id=connection.id)
        assert sample is not None and not sample.ok

        for client in (admin, viewer):
            for path in (base, "/api/v1/integrations/connections/"):
                answers.append(client.get(path).content.decode())
        for path in ("monitoring/status/", "monitoring/alerts/", "notifications/"):
            response = admin.get(f"/api/v1/{path}")
            assert response.status_code == 200, path
            answers.append(response.content.decode())
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    connection.refresh_from_db()
    assert "不可用或已过期" in connection.status_detail
    assert CANARY not in connection.status_detail
    assert CANARY not in _database_text()
    assert CANARY not in stream.getvalue()
    for answer in answers:
        assert CANARY not in answer


def test_client_error_text_is_redacted_at_the_source(simulators_clean):
    from apps.integrations.clients.gewe import GeWeClient

    client = GeWeClient(simulators_clean.urls["gewe"], CANARY)
    with pytest.raises(AuthError) as caught:
        client.list_devices()
    assert CANARY not in str(caught.value)
    assert "****4b06" in str(caught.value)


def test_viewer_cannot_read_the_webhook_url(org, owner, make_member):
    connection = PlatformConnectionFactory(org=org)
    for role, visible in (
        (Role.VIEWER, False),
        (Role.AGENT, False),
        (Role.MANAGER, False),
        (Role.ADMIN, True),
    ):
        client = client_for(make_member(role), org)
        data = client.get(f"/api/v1/integrations/connections/{connection.id}/").json()
        assert (data["webhook_url"] == connection.webhook_url) is visible, role
        listing = client.get("/api/v1/integrations/connections/").content.decode()
        assert (connection.webhook_secret in listing) is visible, role
    data = client_for(owner, org).get(f"/api/v1/integrations/connections/{connection.id}/").json()
    assert data["webhook_url"] == connection.webhook_url
    assert PlatformConnection.objects.count() == 1
