"""The home page's cards endpoint (re-fetched by static/app/dashboard.js on live events)."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from apps.orgs.models import Role

pytestmark = pytest.mark.django_db


def test_cards_render_for_a_member_and_need_a_sign_in(org, make_member):
    url = reverse("admin:console_dashboard_cards")
    anonymous = Client().get(url)
    assert anonymous.status_code == 302 and "/login/" in anonymous["Location"]
    client = Client()
    client.force_login(make_member(Role.MANAGER))
    response = client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    assert "Waiting for a person" in body and "Nobody is waiting." in body
