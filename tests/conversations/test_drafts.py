"""Reply modes auto / draft / off and copilot drafts: create, send, edit and send, discard,
expire, never sent twice (also concurrently), the API and its organisation scoping."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.conversations import drafts
from apps.conversations.models import AITurn, Conversation, Draft, Message
from apps.core.exceptions import ConflictError, PermissionDeniedError
from apps.orgs.models import Role
from tests.conftest import client_for, requires_postgres
from tests.conversations.helpers import deliver

pytestmark = pytest.mark.django_db

CUSTOMER = "wxid_cust0001"


def say(gewe, account, body="有优惠吗"):
    return gewe.build_text(from_wxid=CUSTOMER, text=body, to_account=account.device_id)


def sent_texts(gewe):
    return [s["body"].get("content") for s in gewe.sent]


@pytest.fixture
def draft_account(account):
    account.reply_mode = "draft"
    account.save(update_fields=["reply_mode"])
    return account


@pytest.fixture
def draft(draft_account, reply_app, gewe, django_capture_on_commit_callbacks):
    deliver(draft_account.connection, say(gewe, draft_account), django_capture_on_commit_callbacks)
    return Draft.objects.get()


def test_draft_mode_writes_a_draft_instead_of_sending(
    draft_account, reply_app, gewe, django_capture_on_commit_callbacks
):
    from apps.core import realtime

    pushed = []
    original = realtime.push

    def capture(event_type, data, groups):
        pushed.append(event_type)
        return original(event_type, data, groups=groups)

    realtime.push = capture
    try:
        deliver(
            draft_account.connection, say(gewe, draft_account), django_capture_on_commit_callbacks
        )
    finally:
        realtime.push = original
    assert gewe.sent == []
    draft = Draft.objects.get()
    assert draft.status == Draft.Status.PENDING and draft.text == "echo: 有优惠吗"
    assert draft.ai_app_id == reply_app.pk and draft.reply_to.text == "有优惠吗"
    assert draft.expires_at > timezone.now() + timedelta(minutes=100)
    assert AITurn.objects.get().status == AITurn.Status.DRAFTED
    assert "draft_created" in pushed
    # The question counts as dealt with: no second turn drafts it again.
    assert Conversation.objects.get().ai_answered_message_id == draft.reply_to_id


def test_send_as_written_once(draft, member, gewe, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        sent = drafts.send_draft(org=draft.org, draft_id=draft.pk, user=member)
    assert sent.status == Draft.Status.SENT and sent.decided_by == member
    assert sent_texts(gewe) == ["echo: 有优惠吗"]
    message = Message.objects.get(direction="outbound")
    assert message.sender_kind == "agent" and message.sender_user == member
    assert message.client_msg_id == f"draft:{draft.pk}:0"
    with pytest.raises(ConflictError):
        drafts.send_draft(org=draft.org, draft_id=draft.pk, user=member)
    with pytest.raises(ConflictError):
        drafts.edit_and_send_draft(org=draft.org, draft_id=draft.pk, user=member, text="x")
    assert len(gewe.sent) == 1


def test_edit_and_send(draft, member, gewe, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        sent = drafts.edit_and_send_draft(
            org=draft.org, draft_id=draft.pk, user=member, text="本周有九折优惠"
        )
    assert sent.status == Draft.Status.EDITED and sent.sent_text == "本周有九折优惠"
    assert sent.text == "echo: 有优惠吗"  # the AI's version stays for reports
    assert sent_texts(gewe) == ["本周有九折优惠"]


def test_discard(draft, member, gewe):
    discarded = drafts.discard_draft(org=draft.org, draft_id=draft.pk, user=member)
    assert discarded.status == Draft.Status.DISCARDED
    with pytest.raises(ConflictError):
        drafts.send_draft(org=draft.org, draft_id=draft.pk, user=member)
    assert gewe.sent == []


def test_expire(draft, member, gewe):
    later = draft.expires_at + timedelta(seconds=1)
    assert drafts.drafts_expire(now=later) == 1
    assert drafts.drafts_expire(now=later) == 0  # idempotent
    draft.refresh_from_db()
    assert draft.status == Draft.Status.EXPIRED
    with pytest.raises(ConflictError):
        drafts.send_draft(org=draft.org, draft_id=draft.pk, user=member)


def test_expired_by_time_cannot_be_sent_before_the_sweep(draft, member, settings):
    Draft.objects.filter(pk=draft.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ConflictError):
        drafts.send_draft(org=draft.org, draft_id=draft.pk, user=member)


def test_only_the_assignee_or_a_manager_decides(draft, member, make_member):
    agent, other_agent, manager = (
        make_member(Role.AGENT),
        make_member(Role.AGENT),
        make_member(Role.MANAGER),
    )
    viewer = make_member(Role.VIEWER)
    Conversation.objects.filter(pk=draft.conversation_id).update(assignee=agent)
    with pytest.raises(PermissionDeniedError):
        drafts.discard_draft(org=draft.org, draft_id=draft.pk, user=other_agent)
    with pytest.raises(PermissionDeniedError):
        drafts.discard_draft(org=draft.org, draft_id=draft.pk, user=viewer)
    assert drafts.discard_draft(org=draft.org, draft_id=draft.pk, user=manager).status == (
        Draft.Status.DISCARDED
    )


def test_conversation_override_auto_on_a_draft_account(
    draft_account, reply_app, gewe, django_capture_on_commit_callbacks
):
    deliver(
        draft_account.connection, say(gewe, draft_account, "一"), django_capture_on_commit_callbacks
    )
    Conversation.objects.update(reply_mode="auto")
    deliver(
        draft_account.connection, say(gewe, draft_account, "二"), django_capture_on_commit_callbacks
    )
    assert sent_texts(gewe) == ["echo: 二"]
    assert Draft.objects.count() == 1


def test_reply_mode_off_neither_answers_nor_drafts(
    account, reply_app, gewe, openai_sim, django_capture_on_commit_callbacks
):
    account.reply_mode = "off"
    account.save(update_fields=["reply_mode"])
    deliver(account.connection, say(gewe, account), django_capture_on_commit_callbacks)
    assert gewe.sent == [] and Draft.objects.count() == 0
    assert openai_sim.requests_to("/chat/completions") == []
    assert Conversation.objects.get().mode == "ai"  # not handed off: simply silent
    assert Message.objects.get().triggers_ai is False


@requires_postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_double_send_sends_once(
    org, draft_account, reply_app, gewe, member, django_capture_on_commit_callbacks
):
    deliver(draft_account.connection, say(gewe, draft_account), django_capture_on_commit_callbacks)
    draft = Draft.objects.get()
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def click() -> None:
        try:
            barrier.wait()
            drafts.send_draft(org=org, draft_id=draft.pk, user=member)
            outcomes.append("sent")
        except ConflictError:
            outcomes.append("conflict")
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["conflict", "conflict", "conflict", "sent"]
    assert (
        Message.objects.filter(direction="outbound", client_msg_id__startswith="draft:").count()
        == 1
    )


# -- API -----------------------------------------------------------------------------------


def test_api_list_send_edit_discard_and_cross_org(draft, member, outsider, other_org, gewe):
    client = client_for(member)
    listed = client.get(f"/api/v1/drafts/?conversation={draft.conversation_id}&status=pending")
    assert listed.status_code == 200
    assert [d["id"] for d in listed.json()["results"]] == [draft.pk]
    assert client.get("/api/v1/drafts/?status=bogus").status_code == 400
    assert client.post(f"/api/v1/drafts/{draft.pk}/edit-send/", {"text": ""}).status_code == 400
    response = client.post(f"/api/v1/drafts/{draft.pk}/discard/")
    assert response.status_code == 200 and response.json()["status"] == "discarded"
    assert client.post(f"/api/v1/drafts/{draft.pk}/send/").status_code == 409
    # Another organisation's member sees nothing and can decide nothing.
    rival = client_for(outsider, other_org)
    assert rival.get(f"/api/v1/drafts/{draft.pk}/").status_code == 404
    assert rival.post(f"/api/v1/drafts/{draft.pk}/send/").status_code == 404
    assert rival.get("/api/v1/drafts/").json()["results"] == []


def test_api_viewer_cannot_send(draft, make_member):
    viewer = make_member(Role.VIEWER)
    assert client_for(viewer).post(f"/api/v1/drafts/{draft.pk}/send/").status_code == 403


def test_api_conversation_reply_mode_override(draft, member):
    client = client_for(member)
    url = f"/api/v1/conversations/{draft.conversation_id}/"
    response = client.patch(url, {"reply_mode": "off"}, format="json")
    assert response.status_code == 200 and response.json()["reply_mode"] == "off"
    assert client.patch(url, {"reply_mode": "loud"}, format="json").status_code == 400
    assert client.patch(url, {"reply_mode": ""}, format="json").json()["reply_mode"] == ""
