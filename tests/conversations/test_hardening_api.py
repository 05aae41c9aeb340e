"""Out-of-range query values and another organisation's users answer 4xx / form errors,
never 500 (issue 18)."""

from __future__ import annotations

import pytest

from apps.conversations.models import Conversation
from apps.orgs.models import Role
from tests.accounts.factories import UserFactory
from tests.conversations.helpers import deliver
from tests.orgs.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T00:00:00+99:00",
        "2026-01-01T00:00:00+24:00",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "2026-13-45T00:00:00",
    ],
)
def test_updated_since_out_of_range_answers_400(api_client, value):
    response = api_client.get("/api/v1/conversations/", {"updated_since": value})
    assert response.status_code == 400, response.content
    assert "updated_since" in response.json()["error"]["fields"]


def test_updated_since_in_range_still_filters(api_client):
    response = api_client.get(
        "/api/v1/conversations/", {"updated_since": "2026-01-01T00:00:00+08:00"}
    )
    assert response.status_code == 200


def test_admin_conversation_with_foreign_assignee_is_a_form_error(
    client, org, other_org, account, gewe, django_capture_on_commit_callbacks
):
    payload = gewe.build_text(from_wxid="wxid_c1", text="hi", to_account=account.device_id)
    deliver(account.connection, payload, django_capture_on_commit_callbacks)
    conversation = Conversation.objects.get(org=org)
    stranger = UserFactory(default_org=other_org)
    MembershipFactory(org=other_org, user=stranger, role=Role.AGENT)
    superuser = UserFactory(is_staff=True, is_superuser=True, default_org=org)
    MembershipFactory(org=org, user=superuser, role=Role.OWNER)
    client.force_login(superuser)
    url = f"/admin/conversations/conversation/{conversation.id}/change/"
    response = client.post(
        url,
        {
            "priority": conversation.priority,
            "assignee": stranger.id,
            "ai_app": "",
            "messages-TOTAL_FORMS": "0",
            "messages-INITIAL_FORMS": "0",
            "messages-MIN_NUM_FORMS": "0",
            "messages-MAX_NUM_FORMS": "1000",
        },
    )
    assert response.status_code == 200, response.status_code  # the form again, with an error
    assert "not a member of this conversation" in response.content.decode()
    conversation.refresh_from_db()
    assert conversation.assignee_id is None
