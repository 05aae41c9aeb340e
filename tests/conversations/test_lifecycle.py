"""The lifecycle beat task with a frozen clock: AI sessions active -> idle -> expired (a new
provider session after expiry), drafts expired, idle conversations auto-resolved with a note."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.utils import timezone

from apps.conversations import lifecycle, sessions
from apps.conversations.models import AISession, Conversation, Draft, Message
from apps.conversations.tasks import conversations_lifecycle
from apps.integrations.models import AIApp
from apps.wechat_accounts.services import contact_upsert
from tests.fixtures_simulators import SIM_DIFY_KEY

pytestmark = pytest.mark.django_db

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def dify_app(org, simulators):
    return AIApp.objects.create(
        org=org,
        provider=AIApp.Provider.DIFY,
        name="Dify",
        base_url=simulators.urls["dify"],
        api_key=SIM_DIFY_KEY,
        is_default=True,
    )


@pytest.fixture
def conversation(org, account):
    contact = contact_upsert(org=org, account=account, wxid="wxid_life")
    return Conversation.objects.create(org=org, account=account, contact=contact)


@pytest.fixture
def group_conversation(org, account):
    contact = contact_upsert(org=org, account=account, wxid="777@chatroom")
    return Conversation.objects.create(org=org, account=account, contact=contact)


def _state(conversation, member=""):
    return AISession.objects.get(conversation=conversation, member_wxid=member).state


def test_sessions_move_idle_then_expired_and_restart(org, conversation, dify_app):
    with time_machine.travel(START, tick=False):
        sessions.session_touch(
            conversation, member_wxid="", ai_app=dify_app, provider_conversation_id="conv-1"
        )
        assert sessions.session_for(conversation, member_wxid="", ai_app=dify_app) == "conv-1"
    with time_machine.travel(START + timedelta(minutes=29), tick=False):
        conversations_lifecycle()
        assert _state(conversation) == "active"
    with time_machine.travel(START + timedelta(minutes=31), tick=False):
        conversations_lifecycle()
        assert _state(conversation) == "idle"
        # An idle session is still continued.
        assert sessions.session_for(conversation, member_wxid="", ai_app=dify_app) == "conv-1"
    with time_machine.travel(START + timedelta(hours=24, minutes=1), tick=False):
        conversations_lifecycle()
        conversations_lifecycle()  # idempotent
        session = AISession.objects.get(conversation=conversation)
        assert session.state == "expired" and session.provider_conversation_id == ""
        # Expired: Dify starts a new conversation (no id sent).
        assert sessions.session_for(conversation, member_wxid="", ai_app=dify_app) is None
        sessions.session_touch(
            conversation, member_wxid="", ai_app=dify_app, provider_conversation_id="conv-2"
        )
        session.refresh_from_db()
        assert (session.state, session.provider_conversation_id, session.turns) == (
            "active",
            "conv-2",
            1,
        )


def test_group_sessions_expire_after_the_org_group_idle_time(org, group_conversation, dify_app):
    org.settings = {"ai_group_session_idle_minutes": 10}
    org.save(update_fields=["settings"])
    with time_machine.travel(START, tick=False):
        sessions.session_touch(
            group_conversation, member_wxid="wxid_m", ai_app=dify_app, provider_conversation_id="g"
        )
    with time_machine.travel(START + timedelta(minutes=9), tick=False):
        lifecycle.conversations_lifecycle_org(org=org)
        assert _state(group_conversation, "wxid_m") == "active"
    with time_machine.travel(START + timedelta(minutes=11), tick=False):
        assert (
            sessions.session_for(group_conversation, member_wxid="wxid_m", ai_app=dify_app) is None
        )
        lifecycle.conversations_lifecycle_org(org=org)
        assert _state(group_conversation, "wxid_m") == "expired"


def test_idle_conversations_auto_resolve_with_a_note(org, conversation, account):
    busy_contact = contact_upsert(org=org, account=account, wxid="wxid_busy")
    with time_machine.travel(START, tick=False):
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=timezone.now())
        busy = Conversation.objects.create(
            org=org, account=account, contact=busy_contact, last_message_at=timezone.now()
        )
    with time_machine.travel(START + timedelta(days=6, hours=23), tick=False):
        Conversation.objects.filter(pk=busy.pk).update(last_message_at=timezone.now())
        assert lifecycle.conversations_auto_resolve(org=org) == 0
    with time_machine.travel(START + timedelta(days=7, minutes=1), tick=False):
        assert conversations_lifecycle()["resolved"] == 1
        assert conversations_lifecycle()["resolved"] == 0  # idempotent
    conversation.refresh_from_db()
    busy.refresh_from_db()
    assert conversation.status == "resolved" and busy.status == "open"
    note = Message.objects.get(conversation=conversation)
    assert note.sender_kind == "system" and "7" in note.text
    assert note.payload == {"auto_resolved": True, "idle_days": 7}


def test_auto_resolve_days_setting_and_off(org, conversation):
    with time_machine.travel(START, tick=False):
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=timezone.now())
    org.settings = {"ai_auto_resolve_idle_days": 0}
    org.save(update_fields=["settings"])
    with time_machine.travel(START + timedelta(days=30), tick=False):
        assert lifecycle.conversations_auto_resolve(org=org) == 0
    org.settings = {"ai_auto_resolve_idle_days": 2}
    org.save(update_fields=["settings"])
    with time_machine.travel(START + timedelta(days=2, minutes=1), tick=False):
        assert lifecycle.conversations_auto_resolve(org=org) == 1


def test_other_orgs_conversations_are_untouched_by_this_orgs_setting(org, other_org, conversation):
    org.settings = {"ai_auto_resolve_idle_days": 1}
    org.save(update_fields=["settings"])
    with time_machine.travel(START, tick=False):
        Conversation.objects.filter(pk=conversation.pk).update(last_message_at=timezone.now())
    with time_machine.travel(START + timedelta(days=2), tick=False):
        assert lifecycle.conversations_auto_resolve(org=other_org) == 0
    conversation.refresh_from_db()
    assert conversation.status == "open"


def test_drafts_expire_in_the_beat_task(org, conversation, dify_app):
    with time_machine.travel(START, tick=False):
        message = Message.objects.create(
            org=org,
            conversation=conversation,
            direction="inbound",
            sender_kind="customer",
            text="q",
        )
        draft = Draft.objects.create(
            org=org,
            conversation=conversation,
            reply_to=message,
            ai_app=dify_app,
            text="a",
            expires_at=timezone.now() + timedelta(minutes=120),
        )
    with time_machine.travel(START + timedelta(minutes=119), tick=False):
        assert conversations_lifecycle()["drafts_expired"] == 0
    with time_machine.travel(START + timedelta(minutes=121), tick=False):
        assert conversations_lifecycle()["drafts_expired"] == 1
    draft.refresh_from_db()
    assert draft.status == "expired"


def test_touching_a_session_counts_its_turns_in_one_statement(
    org, conversation, dify_app, django_assert_num_queries
):
    sessions.session_touch(
        conversation, member_wxid="", ai_app=dify_app, provider_conversation_id="c"
    )
    started = AISession.objects.get(conversation=conversation).started_at
    with django_assert_num_queries(1):
        sessions.session_touch(
            conversation, member_wxid="", ai_app=dify_app, provider_conversation_id="c"
        )
    session = AISession.objects.get(conversation=conversation)
    assert (session.turns, session.started_at, session.state) == (2, started, "active")
    # A new provider id starts a new session.
    sessions.session_touch(
        conversation, member_wxid="", ai_app=dify_app, provider_conversation_id="d"
    )
    session.refresh_from_db()
    assert (session.turns, session.provider_conversation_id) == (1, "d")
    assert session.started_at > started
