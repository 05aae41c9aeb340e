"""The workspace page and its WebSocket token: session sign-in, roles, tenancy, visibility."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework_simplejwt.tokens import AccessToken

from apps.conversations.models import Conversation, Message
from apps.orgs.models import Role
from tests.integrations.factories import AIAppFactory
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
    assert b"app/workspace/main.js" in response.content and b"app/live.js" not in response.content


def test_page_config_names_the_orgs_ai_apps_only(org, other_org, make_member):
    ours = AIAppFactory(org=org, name="售前助手")
    AIAppFactory(org=other_org, name="别家助手")
    response = session_client(make_member(Role.AGENT)).get("/workspace/")
    assert response.context["config"]["ai_apps"] == {str(ours.pk): "售前助手"}


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


# -- the API behind the page -------------------------------------------------------------------

API = "/api/v1/conversations/"


def restrict(org) -> None:
    org.settings = {**(org.settings or {}), "conversation_visibility": "assigned"}
    org.save(update_fields=["settings"])


def test_visibility_rule_in_list_detail_counts_and_actions(org, make_member):
    from tests.conftest import client_for

    agent, colleague = make_member(Role.AGENT), make_member(Role.AGENT)
    manager = make_member(Role.MANAGER)
    mine = make_conversation(org, assignee=agent)
    theirs = make_conversation(org, assignee=colleague)
    nobodys = make_conversation(org)
    client = client_for(agent, org)

    def ids(query=""):
        return {row["id"] for row in client.get(API + query).data["results"]}

    # Default: agents see everything (today's behaviour).
    assert ids() == {mine.id, theirs.id, nobodys.id}
    restrict(org)
    assert ids() == {mine.id, nobodys.id}
    assert client.get(f"{API}{theirs.id}/").status_code == 404
    assert client.get(f"{API}{theirs.id}/messages/").status_code == 404
    assert client.post(f"{API}{theirs.id}/notes/", {"text": "x"}).status_code == 404
    assert client.post(f"{API}{theirs.id}/takeover/").status_code == 404
    counts = client.get(API + "counts/").data
    assert counts["all"] == 2 and counts["mine"] == 1 and counts["unassigned"] == 1
    # Managers and above see all.
    assert {r["id"] for r in client_for(manager, org).get(API).data["results"]} == {
        mine.id,
        theirs.id,
        nobodys.id,
    }
    # And the page: another agent's conversation is 404 on a direct URL.
    assert session_client(agent).get(f"/workspace/c/{theirs.id}/").status_code == 404
    assert session_client(agent).get(f"/workspace/c/{nobodys.id}/").status_code == 200


def test_views_and_counts(org, make_member, django_assert_max_num_queries):
    from tests.conftest import client_for

    agent = make_member(Role.AGENT)
    mine = make_conversation(org, assignee=agent)
    waiting_old = make_conversation(
        org, mode="human", status="pending", handed_off_at=timezone.now()
    )
    waiting_new = make_conversation(
        org, mode="human", status="pending", handed_off_at=timezone.now()
    )
    Conversation.objects.filter(pk=waiting_old.pk).update(
        handed_off_at=timezone.now() - timezone.timedelta(minutes=30)
    )
    done = make_conversation(org, status="resolved")
    client = client_for(agent, org)

    def ids(view):
        return [row["id"] for row in client.get(f"{API}?view={view}").data["results"]]

    assert ids("mine") == [mine.id]
    assert ids("waiting") == [waiting_old.id, waiting_new.id]  # oldest first
    assert set(ids("unassigned")) == {waiting_old.id, waiting_new.id}
    assert ids("ai") == [mine.id]
    assert ids("resolved") == [done.id]
    assert client.get(f"{API}?view=nope").status_code == 400
    with django_assert_max_num_queries(6):
        counts = client.get(API + "counts/").data
    assert counts == {
        "mine": 1,
        "unassigned": 2,
        "waiting": 2,
        "ai": 1,
        "resolved": 1,
        "all": 4,
        "unread": 0,
    }
    row = client.get(f"{API}?view=mine").data["results"][0]
    assert row["display_name"] == "王先生" and row["has_drafts"] is False


def test_list_query_count_does_not_grow(org, make_member, django_assert_max_num_queries):
    from tests.conftest import client_for

    agent = make_member(Role.AGENT)
    restrict(org)
    for _ in range(3):
        make_conversation(org)
    client = client_for(agent, org)
    with django_assert_max_num_queries(9) as small:
        client.get(API + "?view=all")
    for _ in range(12):
        make_conversation(org)
    with django_assert_max_num_queries(len(small.captured_queries)):
        assert client.get(API + "?view=all").data["count"] == 15


def test_agent_reply_takes_over_and_assigns(org, make_member, settings):
    from apps.conversations import services

    settings.CELERY_TASK_ALWAYS_EAGER = False  # queue only: nothing is sent in this test
    agent = make_member(Role.AGENT)
    conversation = make_conversation(org)
    Conversation.objects.filter(pk=conversation.pk).update(
        status="pending", mode="human", handoff_reason="keyword"
    )
    from unittest import mock

    with mock.patch("apps.conversations.outbound.submit.dispatch"):
        services.agent_reply(org=org, conversation_id=conversation.pk, user=agent, text="您好")
    conversation.refresh_from_db()
    assert conversation.mode == "human" and conversation.handoff_reason == "agent"
    assert conversation.status == "open" and conversation.assignee_id == agent.id
    assert conversation.ai_paused_until is None  # no auto-return by default


def test_agent_reply_from_ai_mode_silences_the_ai_until_handed_back(org, make_member):
    from unittest import mock

    from apps.conversations import services
    from tests.conftest import client_for

    agent = make_member(Role.AGENT)
    conversation = make_conversation(org)
    assert conversation.mode == "ai"
    client = client_for(agent, org)
    with mock.patch("apps.conversations.outbound.submit.dispatch"):
        response = client.post(f"{API}{conversation.id}/messages/", {"text": "我来"}, format="json")
    assert response.status_code == 202
    conversation.refresh_from_db()
    assert conversation.mode == "human" and conversation.handoff_reason == "agent"
    # The AI does not trigger on the customer's next message.
    message = Message(
        org=org, conversation=conversation, direction="inbound", sender_kind="customer", text="?"
    )
    assert (
        services._should_trigger(
            conversation,
            conversation.contact,
            conversation.account,
            message,
            mock.Mock(created_at=None, is_group=False),
            timezone.now(),
        )
        is False
    )
    response = client.post(f"{API}{conversation.id}/handoff/", {"mode": "ai"}, format="json")
    assert response.status_code == 200 and response.data["mode"] == "ai"


def test_auto_return_time_gives_the_chat_back_to_the_ai(org, make_member):
    from datetime import timedelta
    from unittest import mock

    from apps.conversations import services

    org.settings = {"ai_auto_return_minutes": 30}
    org.save(update_fields=["settings"])
    agent = make_member(Role.AGENT)
    conversation = make_conversation(org)
    with mock.patch("apps.conversations.outbound.submit.dispatch"):
        services.agent_reply(org=org, conversation_id=conversation.pk, user=agent, text="好的")
    conversation.refresh_from_db()
    assert conversation.ai_paused_until is not None
    later = conversation.ai_paused_until + timedelta(seconds=1)
    assert services.conversation_ai_resume_due(conversation, later) is True
    assert conversation.mode == "ai"


def test_takeover_and_notes_and_viewer_cannot_write(org, make_member):
    from tests.conftest import client_for

    agent, viewer = make_member(Role.AGENT), make_member(Role.VIEWER)
    conversation = make_conversation(org)
    client = client_for(agent, org)
    response = client.post(f"{API}{conversation.id}/takeover/")
    assert response.status_code == 200
    assert response.data["mode"] == "human" and response.data["assignee"] == agent.id
    response = client.post(f"{API}{conversation.id}/notes/", {"text": "客户很急"}, format="json")
    assert response.status_code == 201 and response.data["author_name"]
    assert (
        client.post(f"{API}{conversation.id}/notes/", {"text": ""}, format="json").status_code
        == 400
    )
    notes = client_for(viewer, org).get(f"{API}{conversation.id}/notes/").data
    assert [n["text"] for n in notes] == ["客户很急"]
    viewer_client = client_for(viewer, org)
    assert viewer_client.post(f"{API}{conversation.id}/notes/", {"text": "x"}).status_code == 403
    assert viewer_client.post(f"{API}{conversation.id}/messages/", {"text": "x"}).status_code == 403
    # Notes never reach the AI's context or WeChat: they are not messages.
    assert not Message.objects.filter(text="客户很急").exists()


def test_resend_of_a_failed_message(org, make_member):
    from unittest import mock

    from tests.conftest import client_for

    agent = make_member(Role.AGENT)
    conversation = make_conversation(org)
    failed = Message.objects.create(
        org=org,
        conversation=conversation,
        account=conversation.account,
        direction="outbound",
        sender_kind="agent",
        text="报价单",
        status="failed",
        to_wxid=conversation.contact.wxid,
        error="delivery_unknown: timeout",
    )
    client = client_for(agent, org)
    with mock.patch("apps.conversations.outbound.submit.dispatch"):
        first = client.post(f"{API}{conversation.id}/messages/{failed.id}/resend/")
        again = client.post(f"{API}{conversation.id}/messages/{failed.id}/resend/")
    assert first.status_code == 202 and first.data["text"] == "报价单"
    assert first.data["status"] == "queued" and again.data["id"] == first.data["id"]
    sent = Message.objects.create(
        org=org, conversation=conversation, direction="outbound", sender_kind="agent", status="sent"
    )
    assert client.post(f"{API}{conversation.id}/messages/{sent.id}/resend/").status_code == 409


def test_customer_pane(org, make_member, other_org, django_assert_max_num_queries):
    from tests.conftest import client_for
    from tests.wechat_accounts.factories import TagFactory

    agent = make_member(Role.AGENT)
    conversation = make_conversation(org)
    tag = TagFactory(org=org, name="意向客户")
    conversation.contact.tags.add(tag)
    TagFactory(org=other_org, name="别家的标签")
    client = client_for(agent, org)
    with django_assert_max_num_queries(14):
        data = client.get(f"{API}{conversation.id}/customer/").data
    assert data["display_name"] == "王先生"
    assert [t["name"] for t in data["tags"]] == ["意向客户"]
    assert "别家的标签" not in [t["name"] for t in data["all_tags"]]
    assert data["ai_cost"] == "0"
    other = make_conversation(other_org)
    assert client.get(f"{API}{other.id}/customer/").status_code == 404


def test_handoff_acknowledgement_goes_through_the_pipeline_once(
    org, make_member, django_capture_on_commit_callbacks
):
    from unittest import mock

    from apps.conversations import services

    conversation = make_conversation(org)
    with mock.patch("apps.conversations.outbound.submit.dispatch"):
        with django_capture_on_commit_callbacks(execute=True):
            services.conversation_handoff(
                org=org, conversation_id=conversation.pk, mode="human", reason="keyword"
            )
    assert not Message.objects.filter(sender_kind="system", direction="outbound").exists()

    org.settings = {"handoff_ack_enabled": True}
    org.save(update_fields=["settings"])
    other = make_conversation(org)
    with mock.patch("apps.conversations.outbound.submit.dispatch"):
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                services.conversation_handoff(
                    org=org, conversation_id=other.pk, mode="human", reason="keyword"
                )
    acks = Message.objects.filter(conversation=other, sender_kind="system", direction="outbound")
    assert [m.text for m in acks] == ["已为您转接人工客服，请稍候"]
    assert acks[0].status == "queued"
    # A takeover by an agent is not announced.
    third = make_conversation(org)
    agent = make_member(Role.AGENT)
    with django_capture_on_commit_callbacks(execute=True):
        services.conversation_take_over(org=org, conversation_id=third.pk, user=agent)
    assert not Message.objects.filter(conversation=third, sender_kind="system").exists()


def test_customer_pane_shows_sop_enrolments_with_step_progress(org, make_member):
    from apps.sop.models import SopDelivery, SopEnrollment
    from tests.conftest import client_for
    from tests.sop.factories import SopPlanFactory, SopStepFactory

    agent = make_member(Role.AGENT)
    conversation = make_conversation(org)
    plan = SopPlanFactory(org=org, name="意向客户 7 天跟进")
    steps = [SopStepFactory(plan=plan) for _ in range(3)]
    enrolment = SopEnrollment.objects.create(
        org=org, plan=plan, contact=conversation.contact, occurrence="1", enrolled_at=timezone.now()
    )
    for step, status in zip(steps, ["sent", "scheduled", "scheduled"], strict=True):
        SopDelivery.objects.create(
            org=org,
            plan=plan,
            enrollment=enrolment,
            step=step,
            contact=conversation.contact,
            account=conversation.account,
            occurrence="1",
            due_at=timezone.now(),
            status=status,
        )
    data = client_for(agent, org).get(f"{API}{conversation.id}/customer/").data
    (row,) = data["sections"]["sop"]
    assert row["plan_name"] == "意向客户 7 天跟进"
    assert (row["steps_done"], row["steps_total"], row["state"]) == (1, 3, "active")
