import io

import pytest
from django.core.management import call_command

from apps.core import health


def test_healthz_touches_nothing(client):
    # No django_db mark: any database query would raise here.
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_ok(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"]["database"]["ok"] is True
    assert response.json()["checks"]["redis"]["ok"] is True


@pytest.mark.django_db
def test_readyz_redis_down_is_503(client, monkeypatch):
    import redis

    class DeadRedis:
        def ping(self):
            raise redis.ConnectionError("Connection refused")

    monkeypatch.setattr(health, "get_redis", lambda: DeadRedis())
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["redis"]["ok"] is False
    assert "Connection refused" in body["checks"]["redis"]["error"]
    assert body["checks"]["database"]["ok"] is True


@pytest.mark.django_db
def test_readyz_against_a_real_unreachable_redis(client, monkeypatch):
    """Not a mock: a real client pointed at a port where nothing listens."""
    import redis

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    monkeypatch.setattr(health, "get_redis", lambda: dead)
    assert client.get("/readyz").status_code == 503


@pytest.mark.django_db
def test_migrations_are_up_to_date():
    out = io.StringIO()
    # --check exits (SystemExit) when a model change has no migration.
    call_command("makemigrations", "--check", "--dry-run", stdout=out)
    assert "No changes detected" in out.getvalue()


def test_openapi_schema_is_valid_without_warnings():
    out = io.StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out)
    assert "openapi: 3" in out.getvalue()


@pytest.mark.django_db
def test_schema_and_docs_are_served(client):
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/redoc/").status_code == 200
