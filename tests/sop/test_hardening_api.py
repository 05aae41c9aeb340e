"""SOP target ids must be the organisation's contacts (issue 18): another organisation's
contact and a missing id are refused with 400 alike."""

from __future__ import annotations

import pytest

from apps.sop.models import SopPlan
from tests.wechat_accounts.factories import ContactFactory, WeChatAccountFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/sop/plans/"


def _payload(account, ids):
    return {
        "name": "Explicit list",
        "accounts": [account.pk],
        "target_type": "list",
        "target_ids": ids,
        "trigger": "once",
        "steps": [{"kind": "text", "text": "Hi {nickname}"}],
    }


def test_target_ids_of_another_org_or_missing_are_refused(api_client, org, other_org):
    account = WeChatAccountFactory(org=org)
    mine = ContactFactory(org=org, account=account)
    theirs = ContactFactory(org=other_org, account=WeChatAccountFactory(org=other_org))
    for ids in ([theirs.pk], [987654321], [mine.pk, theirs.pk]):
        response = api_client.post(URL, _payload(account, ids), format="json")
        assert response.status_code == 400, (ids, response.content)
        assert "target_ids" in response.json()["error"]["fields"]
    assert not SopPlan.objects.exists()
    response = api_client.post(URL, _payload(account, [mine.pk]), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["target_ids"] == [mine.pk]
    plan_id = response.json()["id"]
    response = api_client.patch(f"{URL}{plan_id}/", {"target_ids": [theirs.pk]}, format="json")
    assert response.status_code == 400
