"""Demo rows: one WeChat account online on the GeWe simulator, ~50 customers with realistic
names and tags, and two groups. ``manage.py simulator_sync`` (run by ``run_stack`` once the
simulators are up) teaches the simulator the same account, friends and groups."""

from __future__ import annotations

import datetime as dt
import random

from django.utils import timezone

from apps.core.demo import demo_seeder
from apps.integrations.models import PlatformConnection
from apps.wechat_accounts import services as wechat
from apps.wechat_accounts.models import Contact, GroupMember, Tag, WeChatAccount

DEMO_ACCOUNT_NAME = "销售小王"
DEMO_DEVICE_ID = "wx_demo_sales_wang_0001"
DEMO_ACCOUNT_WXID = "wxid_sim_sales01"  # the GeWe simulator's default logged-in wxid
DEMO_CONNECTION_NAME = "Demo GeWe (simulator)"  # apps/integrations/demo.py creates it

DEMO_TAGS = [
    ("意向客户", "#fa8c16"),
    ("老客户", "#52c41a"),
    ("VIP", "#eb2f96"),
    ("待跟进", "#1677ff"),
    ("已成交", "#13c2c2"),
    ("价格敏感", "#722ed1"),
]

# 50 customers: (nickname, remark, city).
DEMO_CUSTOMERS = [
    ("王磊", "王磊-装修三居室", "深圳"),
    ("李娜", "李娜-团购", "广州"),
    ("张伟", "张伟-老客户", "深圳"),
    ("刘洋", "", "东莞"),
    ("陈静", "陈静-新房", "佛山"),
    ("杨帆", "", "深圳"),
    ("赵敏", "赵敏-设计师", "广州"),
    ("黄晓明", "", "珠海"),
    ("周杰", "周杰-商铺", "深圳"),
    ("吴婷", "", "惠州"),
    ("徐鹏", "徐鹏-二次购买", "深圳"),
    ("孙丽", "", "广州"),
    ("胡军", "", "中山"),
    ("朱琳", "朱琳-样板间", "深圳"),
    ("高翔", "", "东莞"),
    ("林小雨", "", "厦门"),
    ("何勇", "何勇-工程单", "深圳"),
    ("郭佳", "", "广州"),
    ("马超", "", "佛山"),
    ("罗敏", "罗敏-老带新", "深圳"),
    ("梁静茹", "", "广州"),
    ("宋涛", "", "深圳"),
    ("郑爽", "郑爽-比价中", "杭州"),
    ("谢娟", "", "深圳"),
    ("韩磊", "", "长沙"),
    ("唐嫣", "唐嫣-VIP", "上海"),
    ("冯刚", "", "深圳"),
    ("于洋", "", "广州"),
    ("董洁", "董洁-软装", "深圳"),
    ("萧然", "", "南宁"),
    ("程浩", "", "深圳"),
    ("曹颖", "曹颖-已下定", "广州"),
    ("袁野", "", "东莞"),
    ("邓超", "", "深圳"),
    ("许晴", "许晴-咨询售后", "珠海"),
    ("傅强", "", "深圳"),
    ("沈梦", "", "苏州"),
    ("曾志伟", "曾志伟-批发", "汕头"),
    ("彭丽", "", "深圳"),
    ("吕方", "", "广州"),
    ("苏芮", "苏芮-展厅到访", "深圳"),
    ("卢鑫", "", "佛山"),
    ("蒋欣", "", "深圳"),
    ("蔡明", "蔡明-老客户", "广州"),
    ("贾玲", "", "深圳"),
    ("丁磊", "", "杭州"),
    ("魏晨", "魏晨-预约量房", "深圳"),
    ("薛雪", "", "广州"),
    ("叶青", "", "惠州"),
    ("潘玮", "潘玮-等报价", "深圳"),
]

DEMO_GROUPS = [
    ("34889001001@chatroom", "华南区客户交流群", list(range(0, 12))),
    ("34889001002@chatroom", "新品体验官群", list(range(10, 20))),
]


def customer_wxid(index: int) -> str:
    return f"wxid_demo_c{index:03d}"


def _tags_for(index: int) -> list[str]:
    # Deterministic spread: most customers carry one or two tags, some none.
    rng = random.Random(index * 7919)
    tags = []
    if index < 14 or rng.random() < 0.25:
        tags.append("意向客户")
    if index % 4 == 2:
        tags.append("老客户")
    if index % 9 == 0:
        tags.append("VIP")
    if index % 5 == 1:
        tags.append("待跟进")
    if index % 6 == 3:
        tags.append("已成交")
    if "比价" in DEMO_CUSTOMERS[index][1] or index % 11 == 7:
        tags.append("价格敏感")
    return tags


def demo_account(org) -> WeChatAccount | None:
    return WeChatAccount.objects.filter(org=org, name=DEMO_ACCOUNT_NAME).first()


@demo_seeder
def seed_wechat_accounts(*, org, owner, stdout) -> None:
    connection = PlatformConnection.objects.filter(org=org, name=DEMO_CONNECTION_NAME).first()
    if connection is None:
        return
    account = demo_account(org)
    if account is None:
        account = wechat.account_create(
            org=org,
            connection=connection,
            name=DEMO_ACCOUNT_NAME,
            owner=owner,
            delay_min_seconds=0.5,
            delay_max_seconds=1.5,
        )
        # What a completed QR login stores (the simulator is taught the same device by
        # ``simulator_sync``), then the state machine's own move to online.
        account.wxid = DEMO_ACCOUNT_WXID
        account.nickname = DEMO_ACCOUNT_NAME
        account.device_id = DEMO_DEVICE_ID
        account.login_state = "logged_in"
        account.logged_in_at = timezone.now()
        account.save(
            update_fields=[
                "wxid",
                "nickname",
                "device_id",
                "login_state",
                "logged_in_at",
                "updated_at",
            ]
        )
        stdout.write(f"  wechat_accounts: {account.name} ({account.device_id})\n")
    if account.status != WeChatAccount.Status.ONLINE and WeChatAccount.can_transition(
        account.status, WeChatAccount.Status.ONLINE
    ):
        wechat.account_status_change(
            org=org,
            account_id=account.pk,
            to_status=WeChatAccount.Status.ONLINE,
            reason="demo: logged in on the simulator",
        )
    tags = {}
    for name, color in DEMO_TAGS:
        tags[name] = Tag.objects.filter(org=org, name=name).first() or wechat.tag_create(
            org=org, name=name, color=color
        )
    existing = set(Contact.objects.filter(account=account).values_list("wxid", flat=True))
    now = timezone.now()
    created = 0
    for index, (nickname, remark, city) in enumerate(DEMO_CUSTOMERS):
        wxid = customer_wxid(index)
        if wxid in existing:
            continue
        contact = wechat.contact_upsert(
            org=org,
            account=account,
            wxid=wxid,
            kind=Contact.Kind.FRIEND,
            nickname=nickname,
            remark=remark,
            sex=1 + index % 2,
            source="demo",
            added_at=now - dt.timedelta(days=60 - index, hours=index % 7),
            attributes={"city": city},
        )
        contact.tags.add(*(tags[name] for name in _tags_for(index)))
        created += 1
    for room, name, members in DEMO_GROUPS:
        if room in existing:
            continue
        group = wechat.contact_upsert(
            org=org, account=account, wxid=room, kind=Contact.Kind.GROUP, nickname=name
        )
        GroupMember.objects.bulk_create(
            [
                GroupMember(
                    org=org,
                    group=group,
                    member_wxid=DEMO_ACCOUNT_WXID,
                    nickname=DEMO_ACCOUNT_NAME,
                    is_owner=True,
                ),
                *(
                    GroupMember(
                        org=org,
                        group=group,
                        member_wxid=customer_wxid(i),
                        nickname=DEMO_CUSTOMERS[i][0],
                        inviter_wxid=DEMO_ACCOUNT_WXID,
                    )
                    for i in members
                ),
            ],
            ignore_conflicts=True,
        )
        created += 1
    if created:
        stdout.write(f"  wechat_accounts: {created} contacts and groups with {len(tags)} tags\n")


def simulator_address_book() -> dict:
    """The demo friends and groups in the shape the simulator's ``devices`` control takes."""
    return {
        "friends": [
            {"wxid": customer_wxid(i), "nickname": nickname, "remark": remark}
            for i, (nickname, remark, _city) in enumerate(DEMO_CUSTOMERS)
        ],
        "groups": [
            {"id": room, "name": name, "members": [customer_wxid(i) for i in members]}
            for room, name, members in DEMO_GROUPS
        ],
    }
