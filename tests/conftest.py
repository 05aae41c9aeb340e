"""Shared fixtures: organisations, members, an outsider and an authenticated API client."""

from __future__ import annotations

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.core.redis import get_redis, redis_key
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.orgs.factories import MembershipFactory, OrganizationFactory

# Running provider simulators (``simulators`` fixture) for any test; see the module.
pytest_plugins = ["tests.fixtures_simulators"]


@pytest.fixture(autouse=True)
def _clean_redis():
    """Each test starts with none of the project's keys (the tests' own prefix) in Redis."""
    client = get_redis()
    pattern = redis_key("*")
    for key in client.scan_iter(match=pattern, count=1000):
        client.delete(key)
    yield


@pytest.fixture(autouse=True)
def _english(settings):
    settings.LANGUAGE_CODE = "en"


requires_postgres = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL (set DATABASE_URL)"
)


@pytest.fixture
def org(db):
    return OrganizationFactory(name="Acme Sales", slug="acme")


@pytest.fixture
def other_org(db):
    return OrganizationFactory(name="Rival Sales", slug="rival")


def _member(org, role):
    user = UserFactory(default_org=org)
    MembershipFactory(org=org, user=user, role=role)
    return user


@pytest.fixture
def owner(org):
    return _member(org, Role.OWNER)


@pytest.fixture
def member(org):
    """An admin of ``org`` (can do everything but owner-only actions)."""
    return _member(org, Role.ADMIN)


@pytest.fixture
def make_member(org):
    def make(role=Role.AGENT, organization=None):
        return _member(organization or org, role)

    return make


@pytest.fixture
def outsider(other_org):
    """An owner of another organisation."""
    return _member(other_org, Role.OWNER)


def client_for(user, org=None) -> APIClient:
    client = APIClient()
    client.force_authenticate(user=user)
    if org is not None:
        client.credentials(HTTP_X_ORGANIZATION=org.slug)
    return client


@pytest.fixture
def api_client(member, org):
    return client_for(member, org)


@pytest.fixture
def anon_client():
    return APIClient()


def pytest_generate_tests(metafunc):
    """``cross_org_case`` comes from the test class's ``cross_org_cases`` (tests/crossorg.py)."""
    if "cross_org_case" in metafunc.fixturenames:
        cases = metafunc.cls.cross_org_cases
        metafunc.parametrize("cross_org_case", cases, ids=[url for url, _make in cases])


@pytest.fixture(autouse=True)
def _celery_eager_matches_settings():
    """Every test starts with Celery's eager flag equal to the settings' (a live test that
    switched it off must not leave later tests queueing to a broker nobody reads)."""
    from django.conf import settings as django_settings

    from config.celery import app as celery_app

    celery_app.conf.task_always_eager = django_settings.CELERY_TASK_ALWAYS_EAGER
    yield
