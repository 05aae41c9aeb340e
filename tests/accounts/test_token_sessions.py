"""JWT sessions end for real: refresh reuse revokes the family, logout denies the access token."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "A-long-test-password-42"


@pytest.fixture
def user(org):
    user = UserFactory(default_org=org)
    user.set_password(PASSWORD)
    user.save()
    from tests.orgs.factories import MembershipFactory

    MembershipFactory(org=org, user=user)
    return user


def _login(user) -> dict:
    response = APIClient().post(
        "/api/v1/auth/login/", {"email": user.email, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return response.json()


def _me(access: str) -> int:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access}")
    return client.get("/api/v1/auth/me/").status_code


def _refresh(refresh: str):
    return APIClient().post("/api/v1/auth/refresh/", {"refresh": refresh}, format="json")


def test_refresh_token_reuse_after_rotation_revokes_the_whole_family(user):
    first = _login(user)
    rotated = _refresh(first["refresh"])
    assert rotated.status_code == 200
    second = rotated.json()
    assert _me(second["access"]) == 200

    # Someone replays the old (rotated-away) refresh token: a stolen copy.
    assert _refresh(first["refresh"]).status_code == 401
    # Every token of that login is dead now, the legitimate holder's too.
    assert _refresh(second["refresh"]).status_code == 401
    assert _me(second["access"]) == 401
    assert _me(first["access"]) == 401
    # Another login (another family) is unaffected.
    other = _login(user)
    assert _me(other["access"]) == 200
    assert _refresh(other["refresh"]).status_code == 200


def test_logout_ends_the_access_token_too(user):
    tokens = _login(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens['access']}")
    response = client.post("/api/v1/auth/logout/", {"refresh": tokens["refresh"]}, format="json")
    assert response.status_code == 205
    assert _me(tokens["access"]) == 401
    assert _refresh(tokens["refresh"]).status_code == 401


def test_rotation_keeps_working_without_reuse(user):
    tokens = _login(user)
    for _ in range(3):
        response = _refresh(tokens["refresh"])
        assert response.status_code == 200
        tokens = response.json()
        assert _me(tokens["access"]) == 200
