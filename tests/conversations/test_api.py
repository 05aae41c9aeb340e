"""The agent inbox API and admin: filters, search, actions, canned replies, roles, tenancy."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import CannedReply, Conversation, Label, Message
from apps.orgs.models import Role
from tests.conftest import client_for
from tests.wechat_accounts.factories import ContactFactory, WeChatAccountFactory

pytestmark = pytest.mark.django_db

BASE = "/api/v1/conversations/"


def make_conversation(org, *, text="hello", account=None, **fields) -> Conversation:
    account = account or WeChatAccountFactory(org=org)
    contact = ContactFactory(org=org, account=account)
    conversation = Conversation.objects.create(
        org=org, account=account, contact=contact, last_message_at=timezone.now(), **fields
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


def test_list_filters_and_query_count(api_client, org, member, django_assert_max_num_queries):
    a = make_conversation(org, text="多少钱", unread_count=2)
    b = make_conversation(org, text="thanks", mode="human", status="pending", assignee=member)
    c = make_conversation(org, text="bye", status="resolved")
    label = Label.objects.create(org=org, name="vip")
    a.labels.add(label)
    for i in range(5):
        make_conversation(org, text=f"filler {i}")
    with django_assert_max_num_queries(8):
        response = api_client.get(BASE)
    assert response.status_code == 200 and response.data["count"] == 8
    first = response.data["results"][0]
    assert {"contact", "labels", "last_message_text", "ai_session"} <= set(first)

    def ids(query):
        response = api_client.get(BASE + query)
        assert response.status_code == 200, response.data
        return {row["id"] for row in response.data["results"]}

    assert ids("?status=pending") == {b.pk}
    assert ids("?status=resolved,pending") == {b.pk, c.pk}
    assert ids("?mode=human") == {b.pk}
    assert ids("?assignee=me") == {b.pk}
    assert ids(f"?assignee={member.pk}") == {b.pk}
    assert b.pk not in ids("?assignee=none")
    assert ids("?label=vip") == {a.pk} == ids(f"?label={label.pk}")
    assert ids("?unread=true") == {a.pk}
    assert ids(f"?account={a.account_id}") == {a.pk}
    assert ids("?q=多少") == {a.pk}
    assert ids("?q=THANK") == {b.pk}
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    assert ids(f"?updated_since={future.replace('+', '%2B')}") == set()
    assert api_client.get(BASE + "?status=closed").status_code == 400
    assert api_client.get(BASE + "?unread=maybe").status_code == 400


def test_detail_and_messages_cursor(api_client, org):
    conversation = make_conversation(org)
    for i in range(60):
        Message.objects.create(
            org=org,
            conversation=conversation,
            direction="inbound",
            sender_kind="customer",
            text=f"m{i}",
        )
    detail = api_client.get(f"{BASE}{conversation.pk}/")
    assert detail.status_code == 200 and detail.data["contact"]["wxid"] == conversation.contact.wxid
    page = api_client.get(f"{BASE}{conversation.pk}/messages/")
    assert page.status_code == 200 and len(page.data["results"]) == 50
    assert page.data["results"][0]["text"] == "m59" and page.data["next"]
    rest = api_client.get(page.data["next"])
    assert len(rest.data["results"]) == 11


def test_agent_reply_goes_through_the_pipeline(
    org, account, gewe, member, django_capture_on_commit_callbacks
):
    client = client_for(member, org)
    contact = ContactFactory(org=org, account=account, wxid="wxid_cust0009", nickname="阿强")
    conversation = Conversation.objects.create(org=org, account=account, contact=contact)
    canned = CannedReply.objects.create(
        org=org, title="hi", text="{nickname}您好，我是{agent_name}"
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"{BASE}{conversation.pk}/messages/", {"canned_reply": canned.pk}, format="json"
        )
    assert response.status_code == 202, response.data
    assert response.data["sender_kind"] == "agent" and response.data["status"] == "queued"
    message = Message.objects.get(pk=response.data["id"])
    assert message.status == "sent" and message.sender_user == member
    assert gewe.sent[0]["body"]["content"] == f"阿强您好，我是{member.get_full_name()}"
    bad = client.post(f"{BASE}{conversation.pk}/messages/", {"text": ""}, format="json")
    assert bad.status_code == 400 and "text" in bad.data["error"]["fields"]


def test_actions(
    api_client,
    org,
    member,
    make_member,
    outsider,
    handoffs_recorder,
    django_capture_on_commit_callbacks,
):
    conversation = make_conversation(org, unread_count=3)
    url = f"{BASE}{conversation.pk}/"
    with django_capture_on_commit_callbacks(execute=True):
        r = api_client.post(url + "handoff/", {"mode": "human"}, format="json")
    assert r.status_code == 200 and r.data["mode"] == "human" and r.data["status"] == "pending"
    assert handoffs_recorder[-1]["reason"] == "agent"
    r = api_client.post(url + "handoff/", {"mode": "ai"}, format="json")
    assert r.data["mode"] == "ai" and r.data["status"] == "open"
    assert api_client.post(url + "handoff/", {"mode": "robot"}, format="json").status_code == 400
    agent = make_member(Role.AGENT)
    r = api_client.post(url + "assign/", {"assignee": agent.pk}, format="json")
    assert r.status_code == 200 and r.data["assignee"] == agent.pk
    r = api_client.post(url + "assign/", {"assignee": outsider.pk}, format="json")
    assert r.status_code == 400
    assert (
        api_client.post(url + "assign/", {"assignee": None}, format="json").data["assignee"] is None
    )
    assert api_client.post(url + "resolve/").data["status"] == "resolved"
    assert api_client.post(url + "reopen/").data["status"] == "open"
    until = (timezone.now() + timedelta(hours=2)).isoformat()
    r = api_client.post(url + "snooze/", {"until": until}, format="json")
    assert r.data["status"] == "snoozed" and r.data["snooze_until"]
    past = (timezone.now() - timedelta(hours=2)).isoformat()
    assert api_client.post(url + "snooze/", {"until": past}, format="json").status_code == 400
    r = api_client.post(url + "labels/", {"labels": ["vip", "hot", "vip"]}, format="json")
    assert sorted(r.data["labels"]) == ["hot", "vip"]
    assert api_client.post(url + "labels/", {"labels": []}, format="json").data["labels"] == []
    assert api_client.post(url + "mark-read/").data["unread_count"] == 0
    r = api_client.patch(url, {"priority": 3}, format="json")
    assert r.status_code == 200 and r.data["priority"] == 3


def test_snoozed_conversations_wake_up(org):
    from apps.conversations.services import conversations_wake_snoozed_all_orgs

    conversation = make_conversation(
        org, status="snoozed", snooze_until=timezone.now() - timedelta(minutes=1)
    )
    assert conversations_wake_snoozed_all_orgs() == 1
    conversation.refresh_from_db()
    assert conversation.status == "open" and conversation.snooze_until is None


def test_viewer_reads_but_cannot_act(org, make_member):
    viewer = make_member(Role.VIEWER)
    client = client_for(viewer, org)
    conversation = make_conversation(org)
    assert client.get(BASE).status_code == 200
    assert client.post(f"{BASE}{conversation.pk}/resolve/").status_code == 403
    assert client.post("/api/v1/canned-replies/", {"title": "t", "text": "x"}).status_code == 403


def test_every_endpoint_hides_other_orgs(api_client, org, other_org, simulators_clean):
    foreign = make_conversation(other_org)
    canned = CannedReply.objects.create(org=other_org, title="secret", text="x")
    make_conversation(org)
    listed = api_client.get(BASE).data["results"]
    assert foreign.pk not in {row["id"] for row in listed}
    url = f"{BASE}{foreign.pk}/"
    assert api_client.get(url).status_code == 404
    assert api_client.patch(url, {"priority": 2}, format="json").status_code == 404
    assert api_client.get(url + "messages/").status_code == 404
    assert api_client.post(url + "messages/", {"text": "x"}, format="json").status_code == 404
    for action, body in [
        ("handoff", {"mode": "human"}),
        ("assign", {"assignee": None}),
        ("resolve", {}),
        ("reopen", {}),
        ("snooze", {"until": (timezone.now() + timedelta(hours=1)).isoformat()}),
        ("labels", {"labels": ["x"]}),
        ("mark-read", {}),
    ]:
        assert api_client.post(url + f"{action}/", body, format="json").status_code == 404, action
    canned_url = f"/api/v1/canned-replies/{canned.pk}/"
    assert api_client.get(canned_url).status_code == 404
    assert api_client.patch(canned_url, {"text": "y"}, format="json").status_code == 404
    assert api_client.delete(canned_url).status_code == 404
    assert api_client.post(canned_url + "render/", {"conversation": foreign.pk}).status_code == 404
    assert api_client.get("/api/v1/canned-replies/").data["count"] == 0
    # A canned reply of ours cannot render another org's conversation either.
    ours = CannedReply.objects.create(org=org, title="ours", text="{nickname}")
    r = api_client.post(f"/api/v1/canned-replies/{ours.pk}/render/", {"conversation": foreign.pk})
    assert r.status_code == 404
    foreign.refresh_from_db()
    assert foreign.status == "open" and foreign.mode == "ai" and not foreign.labels.exists()


def test_canned_replies_crud_and_render(api_client, org):
    r = api_client.post(
        "/api/v1/canned-replies/", {"title": "greet", "shortcut": "/g", "text": "{nickname}，{x}"}
    )
    assert r.status_code == 201, r.data
    assert (
        api_client.post("/api/v1/canned-replies/", {"title": "greet", "text": "y"}).status_code
        == 400
    )
    canned_id = r.data["id"]
    assert api_client.get("/api/v1/canned-replies/?q=/g").data["count"] == 1
    r = api_client.patch(
        f"/api/v1/canned-replies/{canned_id}/", {"text": "{nickname}好"}, format="json"
    )
    assert r.status_code == 200 and r.data["text"] == "{nickname}好"
    conversation = make_conversation(org)
    conversation.contact.nickname = "小明"
    conversation.contact.save()
    r = api_client.post(
        f"/api/v1/canned-replies/{canned_id}/render/", {"conversation": conversation.pk}
    )
    assert r.status_code == 200 and r.data["text"] == "小明好"
    assert api_client.delete(f"/api/v1/canned-replies/{canned_id}/").status_code == 204


def test_admin_pages_and_actions(client, org, member, django_capture_on_commit_callbacks):
    from apps.integrations.models import WebhookEvent  # noqa: F401 - registered here

    member.is_staff = True
    member.is_superuser = True
    member.save()
    client.force_login(member)
    conversation = make_conversation(org, text="admin view")
    for url in (
        "/admin/conversations/conversation/",
        f"/admin/conversations/conversation/{conversation.pk}/change/",
        "/admin/conversations/message/",
        "/admin/conversations/aiturn/",
        "/admin/conversations/cannedreply/",
        "/admin/integrations/webhookevent/",
        "/admin/conversations/conversation/?q=admin",
    ):
        assert client.get(url).status_code == 200, url
    response = client.post(
        "/admin/conversations/conversation/",
        {"action": "hand_to_human", "_selected_action": [conversation.pk]},
    )
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.mode == "human" and conversation.status == "pending"


def test_admin_hides_other_orgs_from_staff(client, org, other_org, member):
    from apps.orgs.models import Membership

    member.is_staff = True
    member.save()
    Membership.objects.filter(user=member, org=org).update(role=Role.MANAGER)
    client.force_login(member)
    ours = make_conversation(org)
    foreign = make_conversation(other_org)
    listing = client.get("/admin/conversations/conversation/")
    assert listing.status_code == 200
    ids = {c.pk for c in listing.context["cl"].result_list}
    assert ours.pk in ids and foreign.pk not in ids
    assert client.get(f"/admin/conversations/conversation/{foreign.pk}/change/").status_code in (
        302,
        403,
        404,
    )


def test_canned_reply_render_never_evaluates_format_expressions(api_client, org):
    """Only plain ``{name}`` variables are filled: no attribute or index access (str.format
    would have evaluated ``{nickname.__class__}``)."""
    text = "{nickname.__class__} {nickname[0]} {0} {nickname}"
    canned = api_client.post("/api/v1/canned-replies/", {"title": "t", "text": text}).data
    conversation = make_conversation(org)
    conversation.contact.nickname = "小明"
    conversation.contact.save()
    r = api_client.post(
        f"/api/v1/canned-replies/{canned['id']}/render/", {"conversation": conversation.pk}
    )
    assert r.status_code == 200
    assert r.data["text"] == "{nickname.__class__} {nickname[0]} {0} 小明"
