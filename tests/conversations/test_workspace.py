"""The workspace page and its WebSocket token: session sign-in, roles, tenancy, visibility."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from apps.conversations.models import Conversation, Message
from apps.orgs.models import Role
from tests.wechat_accounts.factories import ContactFactory, WeChatAccountFactory

pytestmark = pytest.mark.django_db


def make_conversation(org, *, text="你好", assignee=None, **fields) -> Conversation:
    account = WeChatAccountFactory(org=org)
    contact = ContactFactory(org=org, account=account, nickname="王先生")
    conversation = Conversation.objects.create(
        org=org,
        account=account,
        contact=contact,
        assignee=assignee,
        last_message_at=timezone.now(),
        **fields,
    )
    Message.objects.create(
        org=org,
        conversation=conversation,
        account=account,
        direction=Message.Direction.INBOUND,
        sender_kind=Message.SenderKind.CUSTOMER,
        text=text,
    )
    return conversation


def session_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_page_needs_a_session(client):
    response = client.get("/workspace/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_page_renders_for_a_member_with_its_config(org, make_member):
    agent = make_member(Role.AGENT)
    response = session_client(agent).get("/workspace/")
    assert response.status_code == 200
    config = response.context["config"]
    assert config["org"]["id"] == org.id and config["can_write"] is True
    assert b'id="workspace-config"' in response.content
    assert b"app/workspace.js" in response.content and b"app/live.js" not in response.content


def test_ws_token_is_short_lived_and_names_the_org(org, make_member, settings):
    settings.WORKSPACE_WS_TOKEN_SECONDS = 60
    agent = make_member(Role.AGENT)
    response = session_client(agent).get("/workspace/ws-token/")
    assert response.status_code == 200
    body = response.json()
    token = AccessToken(body["token"])
    assert token["user_id"] == str(agent.id) or token["user_id"] == agent.id
    assert body["org"] == org.id
    lifetime = token["exp"] - timezone.now().timestamp()
    assert 0 < lifetime <= 61


def test_ws_token_refuses_anonymous_and_other_org(client, org, other_org, make_member):
    assert client.get("/workspace/ws-token/").status_code == 401
    agent = make_member(Role.AGENT)
    assert session_client(agent).get(f"/workspace/ws-token/?org={other_org.id}").status_code == 404


def test_other_orgs_conversation_is_404_on_direct_url(org, other_org, make_member, outsider):
    ours = make_conversation(org)
    theirs = make_conversation(other_org)
    agent = make_member(Role.AGENT)
    client = session_client(agent)
    assert client.get(f"/workspace/c/{ours.id}/").status_code == 200
    assert client.get(f"/workspace/c/{theirs.id}/").status_code == 404
    assert session_client(outsider).get(f"/workspace/c/{ours.id}/").status_code == 404


def test_viewer_gets_a_read_only_page(org, make_member):
    viewer = make_member(Role.VIEWER)
    response = session_client(viewer).get("/workspace/")
    assert response.status_code == 200 and response.context["config"]["can_write"] is False
