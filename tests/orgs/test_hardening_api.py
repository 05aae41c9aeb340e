"""Careless input to the organisation API answers 4xx, never 500 (issue 18)."""

from __future__ import annotations

import pytest

from apps.orgs.models import Invitation

pytestmark = pytest.mark.django_db


def test_invitation_without_role_gets_the_default_role(api_client, org):
    response = api_client.post("/api/v1/orgs/invitations/", {"email": "norole@example.com"})
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "agent"
    assert Invitation.objects.get(org=org).role == "agent"
