"""A hand-built history with known answers (see ``EXPECTED`` in test_figures.py).

Everything happens on local day ``DAY`` of an Asia/Shanghai organisation, through the same
saves the product makes (handoffs and resolutions through the conversations services, so the
reports receivers see them). ``build`` returns the names of the rows it made.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from decimal import Decimal
from types import SimpleNamespace

import time_machine

from apps.billing.models import CostLedger
from apps.conversations import services as conv
from apps.conversations.models import AITurn, Conversation, Label, Message
from apps.integrations.models import AIApp
from apps.orgs.models import Role
from apps.sop.models import SopDelivery, SopEnrollment
from apps.wechat_accounts.models import AccountStatusEvent, WeChatAccount
from tests.sop.factories import SopPlanFactory, SopStepFactory
from tests.wechat_accounts.factories import ContactFactory, WeChatAccountFactory

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
DAY = dt.date(2026, 11, 2)


def at(hh: int, mm: int = 0, ss: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hh, mm, ss), tzinfo=TZ)


def _message(conversation, when, sender_kind, *, user=None, status=None, error="") -> Message:
    inbound = sender_kind == Message.SenderKind.CUSTOMER
    with time_machine.travel(when, tick=False):
        return Message.objects.create(
            org=conversation.org,
            conversation=conversation,
            account=conversation.account,
            direction=Message.Direction.INBOUND if inbound else Message.Direction.OUTBOUND,
            sender_kind=sender_kind,
            sender_user=user,
            text="hi",
            status=status or (Message.Status.RECEIVED if inbound else Message.Status.SENT),
            error=error,
        )


def _handoff(conversation, when, reason):
    with time_machine.travel(when, tick=False):
        conv.conversation_handoff(
            org=conversation.org, conversation_id=conversation.pk, mode="human", reason=reason
        )


def _phone_handoff(conversation, when):
    """What the inbound path does on a message typed on the phone."""
    with time_machine.travel(when, tick=False):
        conversation.refresh_from_db()
        conversation.mode = Conversation.Mode.HUMAN
        conversation.handoff_reason = "phone_reply"
        conversation.handed_off_at = when
        conversation.save(update_fields=["mode", "handoff_reason", "handed_off_at", "updated_at"])


def _resolve(conversation, when):
    with time_machine.travel(when, tick=False):
        conv.conversation_resolve(org=conversation.org, conversation_id=conversation.pk)


def build(org, make_member, *, prefix: str = "") -> SimpleNamespace:
    org.timezone = "Asia/Shanghai"
    org.save(update_fields=["timezone"])
    agent1 = make_member(Role.AGENT, organization=org)
    agent2 = make_member(Role.AGENT, organization=org)
    manager = make_member(Role.MANAGER, organization=org)
    agent1.name, agent2.name = f"{prefix}Agent One", f"{prefix}Agent Two"
    agent1.save(update_fields=["name"])
    agent2.save(update_fields=["name"])
    app = AIApp.objects.create(
        org=org,
        provider=AIApp.Provider.OPENAI,
        name=f"{prefix}Sales AI",
        base_url="http://127.0.0.1:9/v1",
        api_key="sk-test",
        model="qwen-plus",
    )
    account = WeChatAccountFactory(
        org=org, name=f"{prefix}Sales phone", owner=manager, default_ai_app=app
    )
    other_account = WeChatAccountFactory(org=org, name=f"{prefix}Spare phone")
    label = Label.objects.create(org=org, name=f"{prefix}VIP")
    contacts = [ContactFactory(org=org, account=account) for _ in range(9)]
    convs = {}
    assignees = {2: agent1, 3: agent2, 4: agent1, 5: agent1, 7: agent1, 8: agent2}
    for n in range(1, 9):
        with time_machine.travel(at(9), tick=False):
            convs[n] = Conversation.objects.create(
                org=org, account=account, contact=contacts[n - 1], assignee=assignees.get(n)
            )
    convs[2].labels.add(label)
    convs[3].labels.add(label)
    A, H, C, P = (
        Message.SenderKind.AI,
        Message.SenderKind.AGENT,
        Message.SenderKind.CUSTOMER,
        Message.SenderKind.PHONE,
    )
    # C1: answered by the AI alone, resolved after 10 minutes.
    first = _message(convs[1], at(10), C)
    _message(convs[1], at(10, 0, 5), A)
    with time_machine.travel(at(10, 0, 5), tick=False):
        turn = AITurn.objects.create(
            org=org,
            conversation=convs[1],
            last_message=first,
            status=AITurn.Status.ANSWERED,
            ai_app=app,
            cost=Decimal("0.0123"),
        )
        CostLedger.objects.create(
            org=org,
            request_id=f"ai-turn-{turn.pk}",
            conversation_id=convs[1].pk,
            wechat_account_id=account.pk,
            provider="openai",
            model="qwen-plus",
            kind="chat",
            cost=Decimal("0.0123"),
        )
        CostLedger.objects.create(
            org=org,
            request_id=f"send-{turn.pk}",
            conversation_id=convs[1].pk,
            wechat_account_id=account.pk,
            provider="gewe",
            model="send_text",
            kind="platform",
            cost=Decimal("0.0100"),
        )
    _resolve(convs[1], at(10, 10))
    # C2: AI answer, then the customer asks for a person (keyword); agent 1 answers 2 min later.
    _message(convs[2], at(10), C)
    _message(convs[2], at(10, 0, 10), A)
    _message(convs[2], at(10, 1), C)
    _handoff(convs[2], at(10, 1), "keyword")
    _message(convs[2], at(10, 3), H, user=agent1)
    _resolve(convs[2], at(10, 30))
    # C3: negative sentiment; agent 2 answers after 10 minutes; still open.
    _message(convs[3], at(11), C)
    _handoff(convs[3], at(11, 0, 20), "sentiment")
    _message(convs[3], at(11, 10, 20), H, user=agent2)
    # C4: the AI failed; nobody has answered yet (still waiting).
    _message(convs[4], at(12), C)
    _handoff(convs[4], at(12, 0, 30), "ai_failed")
    # C5: budget exhausted; agent 1 answers after 5 minutes, one failed send; resolved at 14:00.
    _message(convs[5], at(13), C)
    _handoff(convs[5], at(13, 0, 1), "budget")
    _message(convs[5], at(13, 5, 1), H, user=agent1)
    _message(
        convs[5],
        at(13, 6),
        H,
        user=agent1,
        status=Message.Status.FAILED,
        error="delivery_unknown: the worker stopped",
    )
    _resolve(convs[5], at(14))
    # C6: AI answer, then the salesperson types on the phone (takeover, nobody waits).
    _message(convs[6], at(14), C)
    _message(convs[6], at(14, 0, 2), A)
    _message(convs[6], at(14, 2), P)
    _phone_handoff(convs[6], at(14, 2))
    # C7: agent 1 takes the chat over by answering (takeover).
    _message(convs[7], at(15), C)
    _message(convs[7], at(15, 1), H, user=agent1)
    _handoff(convs[7], at(15, 1, 1), "agent")
    # C8: no AI app; agent 2 answers after 20 minutes.
    _message(convs[8], at(16), C)
    _handoff(convs[8], at(16, 0, 1), "no_ai_app")
    _message(convs[8], at(16, 20, 1), H, user=agent2)
    # The account is offline 20:00-21:30.
    for when, to_status in ((at(20), "offline"), (at(21, 30), "online")):
        with time_machine.travel(when, tick=False):
            AccountStatusEvent.objects.create(
                org=org, account=account, from_status="online", to_status=to_status
            )
    # SOP: a step sent to C1's contact (who wrote at 10:00: replied) and to a ninth contact (no
    # reply), one failed and one skipped delivery.
    plan = SopPlanFactory(org=org, name=f"{prefix}Welcome")
    step = SopStepFactory(plan=plan, org=org, order=1, text="Welcome aboard")
    deliveries = [
        (contacts[0], SopDelivery.Status.SENT),
        (contacts[8], SopDelivery.Status.SENT),
        (contacts[1], SopDelivery.Status.FAILED),
        (contacts[2], SopDelivery.Status.SKIPPED),
    ]
    with time_machine.travel(at(9), tick=False):
        for contact, status in deliveries:
            enrollment = SopEnrollment.objects.create(
                org=org, plan=plan, contact=contact, occurrence="once", enrolled_at=at(8)
            )
            SopDelivery.objects.create(
                org=org,
                plan=plan,
                enrollment=enrollment,
                step=step,
                contact=contact,
                account=account,
                occurrence="once",
                due_at=at(9),
                status=status,
                sent_at=at(9) if status == SopDelivery.Status.SENT else None,
            )
    return SimpleNamespace(
        agent1=agent1,
        agent2=agent2,
        manager=manager,
        app=app,
        account=account,
        other_account=other_account,
        label=label,
        conversations=convs,
        plan=plan,
        step=step,
        WeChatAccount=WeChatAccount,
    )
