"""Credentials of connections and AI apps are encrypted at rest and survive key rotation."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.db import connection

from apps.integrations.models import AIApp, PlatformConnection
from tests.integrations.factories import AIAppFactory, PlatformConnectionFactory

pytestmark = pytest.mark.django_db


def raw_column(model, field: str, pk: int) -> str:
    table = connection.ops.quote_name(model._meta.db_table)
    column = connection.ops.quote_name(model._meta.get_field(field).column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def test_raw_columns_never_hold_plaintext(org):
    conn = PlatformConnectionFactory(
        org=org, token="gewe-plain-token-1234", password="pw-secret-99"
    )
    app = AIAppFactory(org=org, api_key="sk-plaintext-key-abcd")
    for model, field, pk, plain in (
        (PlatformConnection, "token", conn.pk, "gewe-plain-token-1234"),
        (PlatformConnection, "password", conn.pk, "pw-secret-99"),
        (AIApp, "api_key", app.pk, "sk-plaintext-key-abcd"),
    ):
        stored = raw_column(model, field, pk)
        assert plain not in stored
        assert stored.startswith("gAAAA")  # a Fernet token
    assert PlatformConnection.objects.get(pk=conn.pk).token == "gewe-plain-token-1234"
    assert AIApp.objects.get(pk=app.pk).api_key == "sk-plaintext-key-abcd"


def test_same_secret_encrypts_differently_each_time(org):
    first = AIAppFactory(org=org, api_key="sk-same-key-000000")
    second = AIAppFactory(org=org, api_key="sk-same-key-000000")
    assert raw_column(AIApp, "api_key", first.pk) != raw_column(AIApp, "api_key", second.pk)


def test_reencrypt_fields_moves_secrets_to_the_new_key(org, settings):
    old_key = settings.FIELD_ENCRYPTION_KEYS[0]
    app = AIAppFactory(org=org, api_key="sk-rotate-me-4321")
    conn = PlatformConnectionFactory(org=org, token="gewe-rotate-me-8765")
    before = raw_column(AIApp, "api_key", app.pk)

    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, old_key]
    call_command("reencrypt_fields", stdout=open("/dev/null", "w"))  # noqa: SIM115

    after = raw_column(AIApp, "api_key", app.pk)
    assert after != before
    assert Fernet(new_key.encode()).decrypt(after.encode()).decode() == "sk-rotate-me-4321"
    with pytest.raises(InvalidToken):
        Fernet(old_key.encode()).decrypt(after.encode())
    token_after = raw_column(PlatformConnection, "token", conn.pk)
    with pytest.raises(InvalidToken):
        Fernet(old_key.encode()).decrypt(token_after.encode())

    # With the old key removed the application still reads every secret.
    settings.FIELD_ENCRYPTION_KEYS = [new_key]
    assert AIApp.objects.get(pk=app.pk).api_key == "sk-rotate-me-4321"
    assert PlatformConnection.objects.get(pk=conn.pk).token == "gewe-rotate-me-8765"
