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


def test_budget_account_must_be_the_organisations(api_client, org, other_org):
    from tests.wechat_accounts.factories import WeChatAccountFactory

    mine = WeChatAccountFactory(org=org)
    theirs = WeChatAccountFactory(org=other_org)
    body = {"name": "Account cap", "scope": "account", "money_limit": "10", "action": "block"}
    for account_id in (theirs.id, 987654321):
        response = api_client.post(
            "/api/v1/billing/budgets/", {**body, "wechat_account_id": account_id}, format="json"
        )
        assert response.status_code == 400, response.content
        assert "wechat_account_id" in response.json()["error"]["fields"]
    response = api_client.post(
        "/api/v1/billing/budgets/", {**body, "wechat_account_id": mine.id}, format="json"
    )
    assert response.status_code == 201, response.content
    budget_id = response.json()["id"]
    response = api_client.patch(
        f"/api/v1/billing/budgets/{budget_id}/", {"wechat_account_id": theirs.id}, format="json"
    )
    assert response.status_code == 400
