"""Admin pages of issue 17: drafts and AI sessions (scoped to the organisation), the account's
AI app list in failover order (inline), reply mode and group reply policy on the account and
group pages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import AISession, Conversation, Draft, Message
from apps.integrations.models import AIApp
from apps.orgs.models import Role
from apps.wechat_accounts.models import AccountAIApp, Contact
from tests.accounts.factories import UserFactory
from tests.orgs.factories import MembershipFactory
from tests.wechat_accounts.factories import ContactFactory, WeChatAccountFactory

pytestmark = pytest.mark.django_db


def _manager(org):
    user = UserFactory(is_staff=True, default_org=org)
    MembershipFactory(org=org, user=user, role=Role.MANAGER)
    return user


def _draft(org, text="答复"):
    account = WeChatAccountFactory(org=org)
    contact = ContactFactory(org=org, account=account)
    conversation = Conversation.objects.create(org=org, account=account, contact=contact)
    message = Message.objects.create(
        org=org, conversation=conversation, direction="inbound", sender_kind="customer", text="q"
    )
    app = AIApp.objects.create(
        org=org, provider="openai", name=f"AI {org.pk}", base_url="http://ai:1/v1", model="m"
    )
    AISession.objects.create(
        org=org, conversation=conversation, ai_app=app, provider_conversation_id="s1"
    )
    return Draft.objects.create(
        org=org,
        conversation=conversation,
        reply_to=message,
        ai_app=app,
        text=text,
        expires_at=timezone.now() + timedelta(hours=1),
    )


def test_draft_and_session_pages_are_scoped(client, org, other_org):
    mine, theirs = _draft(org, "我们的草稿"), _draft(other_org, "别人的草稿")
    client.force_login(_manager(org))
    page = client.get("/admin/conversations/draft/")
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    assert list(page.context["cl"].result_list) == [mine]
    assert client.get(f"/admin/conversations/draft/{mine.pk}/change/").status_code == 200
    assert client.get(f"/admin/conversations/draft/{theirs.pk}/change/").status_code in (
        302,
        403,
        404,
    )
    sessions = client.get("/admin/conversations/aisession/")
    assert list(sessions.context["cl"].result_list) == [AISession.objects.get(org=org)]
    # The discard action goes through the service and stays in the organisation.
    client.post(
        "/admin/conversations/draft/",
        {"action": "action_discard", "_selected_action": [mine.pk, theirs.pk]},
    )
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == "discarded" and theirs.status == "pending"


def test_account_page_edits_the_ai_app_list_and_policies(client, org, other_org):
    account = WeChatAccountFactory(org=org)
    group = ContactFactory(org=org, account=account, wxid="9@chatroom", kind=Contact.Kind.GROUP)
    app = AIApp.objects.create(
        org=org, provider="openai", name="Primary", base_url="http://ai:1/v1", model="m"
    )
    foreign = AIApp.objects.create(
        org=other_org, provider="openai", name="Foreign", base_url="http://ai:1/v1", model="m"
    )
    client.force_login(_manager(org))
    url = f"/admin/wechat_accounts/wechataccount/{account.pk}/change/"
    page = client.get(url).content.decode()
    assert "Primary" in page and "Foreign" not in page  # the app choices are the org's
    assert 'name="reply_mode"' in page and 'name="group_reply_policy"' in page
    group_page = client.get(f"/admin/wechat_accounts/contact/{group.pk}/change/").content.decode()
    assert 'name="reply_policy"' in group_page
    assert foreign.pk  # never offered
    assert AccountAIApp.objects.count() == 0
    AccountAIApp.objects.create(org=org, account=account, ai_app=app, position=0)
    assert AccountAIApp.objects.get().org_id == org.pk
