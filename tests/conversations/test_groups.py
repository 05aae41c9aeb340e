"""Group chats: each asker gets their own answer, @-mentioned by display name, in order; names
looked up on first sight and cached; one provider session per member and group, renewed after
the idle hour; the group's own reply policy."""

from __future__ import annotations

import pytest
import time_machine
from django.utils import timezone

from apps.conversations import ai
from apps.conversations.models import AISession, AITurn, Conversation, Message
from apps.integrations.models import AIApp
from apps.integrations.simulators.gewe import MENTION_END
from apps.wechat_accounts.models import Contact, GroupMember
from tests.conversations.helpers import deliver
from tests.fixtures_simulators import SIM_FASTGPT_KEY

pytestmark = pytest.mark.django_db

ROOM = "34000000000@chatroom"
ALICE, BOB = "wxid_cust0000", "wxid_cust0001"


@pytest.fixture
def group_account(account, gewe):
    gewe.generate_contacts(friends=3, groups=1, members=3)
    account.group_reply_policy = "all"
    account.save(update_fields=["group_reply_policy"])
    return account


def group_say(gewe, account, sender, body):
    return gewe.build_group_text(
        chatroom_id=ROOM, sender_wxid=sender, text=body, to_account=account.device_id
    )


def sent(gewe):
    return [(s["body"].get("content"), s["body"].get("ats")) for s in gewe.sent]


def test_two_members_writing_at_once_get_two_answers_in_order(
    group_account, reply_app, gewe, openai_sim, settings, django_capture_on_commit_callbacks
):
    # Both messages are stored before any turn runs (a merge window that has not passed).
    settings.CONVERSATION_MERGE_WINDOW_SECONDS = 30
    cap = django_capture_on_commit_callbacks
    deliver(group_account.connection, group_say(gewe, group_account, ALICE, "多少钱"), cap)
    deliver(group_account.connection, group_say(gewe, group_account, BOB, "有现货吗"), cap)
    deliver(group_account.connection, group_say(gewe, group_account, ALICE, "包邮吗"), cap)
    assert gewe.sent == []
    settings.CONVERSATION_MERGE_WINDOW_SECONDS = 0
    conversation = Conversation.objects.get()
    with cap(execute=True):
        ai.ai_turn_run(org_id=conversation.org_id, conversation_id=conversation.pk)

    # Never merged: three askers' turns, each answer @-mentions its asker by name, in order.
    assert sent(gewe) == [
        (f"@客户0000{MENTION_END}echo: 客户0000: 多少钱", ALICE),
        (f"@客户0001{MENTION_END}echo: 客户0001: 有现货吗", BOB),
        (f"@客户0000{MENTION_END}echo: 客户0000: 包邮吗", ALICE),
    ]
    turns = list(AITurn.objects.order_by("id"))
    assert [t.member_wxid for t in turns] == [ALICE, BOB, ALICE]
    assert all(t.status == AITurn.Status.ANSWERED for t in turns)
    # Names were looked up once (first sight) and cached; messages carry them.
    assert GroupMember.objects.filter(group__wxid=ROOM).count() == 4
    assert len(gewe.requests_to("/group/getChatroomMemberList")) == 1
    assert set(
        Message.objects.filter(direction="inbound").values_list("sender_name", flat=True)
    ) == {"客户0000", "客户0001"}
    assert Contact.objects.get(wxid=ROOM).nickname == "客户群0"


def test_unknown_member_falls_back_to_the_wxid_and_never_blocks(
    group_account, reply_app, gewe, django_capture_on_commit_callbacks
):
    cap = django_capture_on_commit_callbacks
    stranger = "wxid_not_in_the_list"
    deliver(group_account.connection, group_say(gewe, group_account, stranger, "hi"), cap)
    assert sent(gewe) == [(f"@{stranger}{MENTION_END}echo: {stranger}: hi", stranger)]


def test_group_policy_override_on_the_group(
    group_account, reply_app, gewe, django_capture_on_commit_callbacks
):
    cap = django_capture_on_commit_callbacks
    deliver(group_account.connection, group_say(gewe, group_account, ALICE, "一"), cap)
    Contact.objects.filter(wxid=ROOM).update(reply_policy="off")
    deliver(group_account.connection, group_say(gewe, group_account, ALICE, "二"), cap)
    assert len(gewe.sent) == 1
    group_account.group_reply_policy = "off"
    group_account.save(update_fields=["group_reply_policy"])
    Contact.objects.filter(wxid=ROOM).update(reply_policy="all")
    deliver(group_account.connection, group_say(gewe, group_account, ALICE, "三"), cap)
    assert len(gewe.sent) == 2


def test_session_per_member_and_group_renewed_after_the_idle_hour(
    org, group_account, gewe, simulators_clean, django_capture_on_commit_callbacks
):
    app = AIApp.objects.create(
        org=org,
        provider=AIApp.Provider.FASTGPT,
        name="FastGPT",
        base_url=simulators_clean.urls["fastgpt"],
        api_key=SIM_FASTGPT_KEY,
        is_default=True,
    )
    fastgpt = simulators_clean["fastgpt"]
    cap = django_capture_on_commit_callbacks

    def chat_ids():
        return [r.json.get("chatId") for r in fastgpt.requests_to("/v1/chat/completions")]

    start = timezone.now()
    with time_machine.travel(start, tick=True):
        deliver(group_account.connection, group_say(gewe, group_account, ALICE, "一"), cap)
        deliver(group_account.connection, group_say(gewe, group_account, BOB, "二"), cap)
        deliver(group_account.connection, group_say(gewe, group_account, ALICE, "三"), cap)
    alice_1, bob_1, alice_2 = chat_ids()
    assert alice_1 == alice_2 and alice_1 != bob_1  # one session per member and group
    assert AISession.objects.filter(ai_app=app).count() == 2
    # 61 minutes later Alice's session is expired: a new provider session starts.
    with time_machine.travel(start + timezone.timedelta(minutes=61), tick=True):
        deliver(group_account.connection, group_say(gewe, group_account, ALICE, "四"), cap)
    assert chat_ids()[-1] not in (alice_1, bob_1)
    assert (
        AISession.objects.get(ai_app=app, member_wxid=ALICE).provider_conversation_id
        == (chat_ids()[-1])
    )


def test_draft_mode_in_a_group_drafts_one_answer_per_asker(
    group_account, reply_app, gewe, settings, django_capture_on_commit_callbacks
):
    from apps.conversations.models import Draft

    group_account.reply_mode = "draft"
    group_account.save(update_fields=["reply_mode"])
    settings.CONVERSATION_MERGE_WINDOW_SECONDS = 30
    cap = django_capture_on_commit_callbacks
    deliver(group_account.connection, group_say(gewe, group_account, ALICE, "多少钱"), cap)
    deliver(group_account.connection, group_say(gewe, group_account, BOB, "有现货吗"), cap)
    settings.CONVERSATION_MERGE_WINDOW_SECONDS = 0
    conversation = Conversation.objects.get()
    with cap(execute=True):
        ai.ai_turn_run(org_id=conversation.org_id, conversation_id=conversation.pk)
    assert gewe.sent == []
    drafts = list(Draft.objects.order_by("id"))
    assert [(d.mention_wxid, d.mention_name) for d in drafts] == [
        (ALICE, "客户0000"),
        (BOB, "客户0001"),
    ]
