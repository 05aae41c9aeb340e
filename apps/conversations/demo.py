"""Demo rows: conversations in every state a newcomer should see (the AI answering, waiting for
a person after a handoff, resolved) with a real message history, and a few canned replies.

History rows are written here directly (they happened "before" the demo started: no AI turn
or send may run for them); the state changes go through the services (handoff, assign,
resolve), so the same events and pushes happen as in real use."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db.models import Max
from django.utils import timezone

from apps.core.demo import demo_seeder
from apps.integrations.models import AIApp
from apps.orgs.models import Membership, Role

from . import services
from .models import CannedReply, Conversation, Message

# (customer index or group wxid, final state, handoff reason, [(who, text, minutes ago)]).
# who: "c" the customer (in groups "c:<member index>"), "ai", "agent".
DEMO_CONVERSATIONS = [
    (
        0,
        "ai",
        "",
        [
            ("c", "你好，想了解一下你们的实木地板，三居室大概要多少钱？", 1500),
            (
                "ai",
                "您好王先生！三居室按 90㎡ 铺装估算，橡木多层实木地板含安装约 1.8–2.4 万元，"
                "具体看您选的系列。方便说一下房子面积吗？",
                1499,
            ),
            ("c", "大概 95 平", 1490),
            (
                "ai",
                "好的，95㎡ 推荐「森语」系列，含辅料和安装约 2.1 万元，本月下单送踢脚线。"
                "需要帮您预约免费上门量房吗？",
                1489,
            ),
            ("c", "好的，周六上午可以吗", 1480),
            ("ai", "可以的，已为您登记周六上午 10 点量房，师傅会提前一天电话联系您 😊", 1479),
        ],
    ),
    (
        1,
        "waiting",
        services.HandoffReason.KEYWORD,
        [
            ("c", "我们小区 8 户想一起团购，能给什么价格？", 95),
            (
                "ai",
                "您好李女士！8 户以上团购可享 9 折并免费出设计方案。请问大家主要看哪个系列？",
                94,
            ),
            ("c", "价格还是太贵了，我要转人工，跟你们经理谈", 42),
        ],
    ),
    (
        4,
        "waiting",
        services.HandoffReason.AGENT,
        [
            ("c", "新房要交付了，想整体做软装，你们能出方案吗", 240),
            ("ai", "可以的陈女士！我们有设计师一对一出方案。请问户型和预算大概是多少？", 239),
            ("c", "四房两厅，预算 15 万左右，想约设计师当面聊", 18),
        ],
    ),
    (
        2,
        "resolved",
        "",
        [
            ("c", "上个月买的地板有一块翘起来了，怎么处理？", 2900),
            ("ai", "张先生您好，很抱歉给您带来不便！方便拍张照片吗？我帮您安排售后。", 2899),
            ("c", "照片发你了，就在客厅靠窗那边", 2890),
            ("agent", "张先生您好，我是客服小李，已安排售后师傅明天下午上门检修，费用全免。", 2870),
            ("c", "好的，谢谢", 2860),
            ("agent", "不客气，有问题随时找我们！", 2859),
        ],
    ),
    (
        6,
        "resolved",
        "",
        [
            ("c", "你们有没有样品册可以发一份", 4300),
            ("ai", "赵老师好！电子样品册已整理好，我让同事稍后发给您，也欢迎来展厅看实物。", 4299),
            ("c", "收到，谢谢", 4290),
        ],
    ),
    (
        3,
        "ai",
        "",
        [
            ("c", "在吗？你们周末门店几点关门", 12),
            ("ai", "在的！门店周末营业到晚上 9 点，地址是南山区科技园中区 8 号，欢迎来体验～", 11),
        ],
    ),
    (
        "34889001001@chatroom",
        "ai",
        "",
        [
            ("c:8", "@销售小王 请问团购活动什么时候截止？", 300),
            ("ai", "本期团购活动截止到本月 30 日，群内下单额外再享 95 折哦～", 299),
            ("c:0", "收到，谢谢", 290),
        ],
    ),
]

DEMO_CANNED_REPLIES = [
    ("问候", "hi", "您好{nickname}，我是{account_name}，很高兴为您服务！"),
    ("门店地址", "addr", "门店地址：深圳市南山区科技园中区 8 号，周一至周日 9:00–21:00。"),
    ("预约量房", "measure", "已为您登记免费上门量房，师傅会提前一天电话联系您确认时间。"),
]


@demo_seeder
def seed_conversations(*, org, owner, stdout) -> None:
    from apps.wechat_accounts.demo import DEMO_CUSTOMERS, customer_wxid, demo_account
    from apps.wechat_accounts.models import Contact

    account = demo_account(org)
    if account is None:
        return
    ai_app = AIApp.objects.filter(org=org, is_default=True).first()
    agent = (
        Membership.objects.filter(org=org, role=Role.AGENT)
        .select_related("user")
        .order_by("id")
        .first()
    )
    now = timezone.now()
    created = 0
    msg_seq = (Message.objects.filter(account=account).aggregate(n=Max("id"))["n"] or 0) + 1
    for target, state, reason, lines in DEMO_CONVERSATIONS:
        wxid = customer_wxid(target) if isinstance(target, int) else target
        contact = Contact.objects.filter(account=account, wxid=wxid).first()
        if contact is None or Conversation.objects.filter(org=org, contact=contact).exists():
            continue
        conversation = Conversation.objects.create(
            org=org, account=account, contact=contact, ai_app=ai_app
        )
        last_inbound = None
        for who, text, minutes_ago in lines:
            at = now - dt.timedelta(minutes=minutes_ago)
            message = _message(
                org, conversation, account, who, text, ai_app, agent, f"demo-{msg_seq}"
            )
            if who.startswith("c:"):
                index = int(who[2:])
                message.sender_wxid = customer_wxid(index)
                message.sender_name = DEMO_CUSTOMERS[index][0]
                message.mentions_account = "@" in text
                message.save(update_fields=["sender_wxid", "sender_name", "mentions_account"])
            msg_seq += 1
            # created_at is auto_now_add: the history's own times are written afterwards.
            Message.objects.filter(pk=message.pk).update(
                created_at=at,
                updated_at=at,
                platform_created_at=at if message.direction == Message.Direction.INBOUND else None,
                sent_at=at if message.direction == Message.Direction.OUTBOUND else None,
            )
            if message.direction == Message.Direction.INBOUND:
                last_inbound = (message, at)
        last_at = now - dt.timedelta(minutes=lines[-1][2])
        Conversation.objects.filter(pk=conversation.pk).update(
            last_message_at=last_at,
            last_inbound_at=last_inbound[1] if last_inbound else None,
            ai_answered_message_id=last_inbound[0].pk if last_inbound else 0,
            unread_count=1 if lines[-1][0].startswith("c") and state != "resolved" else 0,
            created_at=now - dt.timedelta(minutes=lines[0][2]),
        )
        if state == "waiting":
            services.conversation_handoff(
                org=org,
                conversation_id=conversation.pk,
                mode=Conversation.Mode.HUMAN,
                reason=reason,
            )
            if agent is not None:
                services.conversation_assign(
                    org=org, conversation_id=conversation.pk, assignee=agent.user
                )
            # The customer has been waiting since their last message, not since the seed ran.
            Conversation.objects.filter(pk=conversation.pk).update(handed_off_at=last_at)
        elif state == "resolved":
            if agent is not None and any(who == "agent" for who, _t, _m in lines):
                services.conversation_assign(
                    org=org, conversation_id=conversation.pk, assignee=agent.user
                )
            services.conversation_resolve(org=org, conversation_id=conversation.pk)
            Conversation.objects.filter(pk=conversation.pk).update(resolved_at=last_at)
        created += 1
    for title, shortcut, text in DEMO_CANNED_REPLIES:
        if not CannedReply.objects.filter(org=org, title=title).exists():
            services.canned_reply_create(
                org=org, user=owner, title=title, shortcut=shortcut, text=text
            )
    if created:
        stdout.write(f"  conversations: {created} conversations with history\n")


def _message(org, conversation, account, who, text, ai_app, agent, platform_id) -> Message:
    if who.startswith("c"):
        return Message.objects.create(
            org=org,
            conversation=conversation,
            account=account,
            direction=Message.Direction.INBOUND,
            sender_kind=Message.SenderKind.CUSTOMER,
            text=text,
            status=Message.Status.RECEIVED,
            platform_msg_id=platform_id,
            sender_wxid=conversation.contact.wxid,
            sender_name=conversation.contact.nickname,
        )
    is_ai = who == "ai"
    return Message.objects.create(
        org=org,
        conversation=conversation,
        account=account,
        direction=Message.Direction.OUTBOUND,
        sender_kind=Message.SenderKind.AI if is_ai else Message.SenderKind.AGENT,
        text=text,
        status=Message.Status.SENT,
        platform_msg_id=platform_id,
        to_wxid=conversation.contact.wxid,
        sender_user=None if is_ai or agent is None else agent.user,
        ai_app=ai_app if is_ai else None,
        ai_input_tokens=len(text) * 3 if is_ai else None,
        ai_output_tokens=len(text) if is_ai else None,
        ai_cost=Decimal("0.0021") if is_ai else None,
        ai_latency_ms=1200 + len(text) * 9 if is_ai else None,
    )
