"""Budget filters answer another organisation's ids exactly like missing ones (issue 18)."""

from __future__ import annotations

import pytest

from tests.billing.factories import BudgetFactory

pytestmark = pytest.mark.django_db


def test_budget_user_filter_is_no_existence_oracle(api_client, org, member, outsider):
    BudgetFactory(org=org, scope="user", user=member)
    other = api_client.get(f"/api/v1/billing/budgets/?user={outsider.id}")
    missing = api_client.get("/api/v1/billing/budgets/?user=987654321")
    assert other.status_code == missing.status_code == 200
    assert other.json()["results"] == missing.json()["results"] == []
    assert len(api_client.get(f"/api/v1/billing/budgets/?user={member.id}").json()["results"]) == 1
    assert api_client.get("/api/v1/billing/budgets/?user=1e400").status_code == 400
