"""Platform data is data: fuzzed platform values never block login, contact sync, group member
lists, friend requests, inbound processing or a stored send result.

A seeded generator (reproducible; no extra dependency) mutates every field of realistic
payloads and client results with hostile values: over-long text, wrong types, URLs Django's
validator refuses, absurd numbers and timestamps, control characters, ids with spaces. Each
parser and each storing service must keep what can be kept and never raise.
"""

from __future__ import annotations

import random
from datetime import datetime

import pytest

from apps.conversations.models import Message
from apps.integrations import platform_data as pd
from apps.integrations.clients.wechat import (
    Contact as PlatformContact,
)
from apps.integrations.clients.wechat import (
    ContactList,
    Label,
    LoginStatus,
    sent_message,
)
from apps.integrations.clients.wechat import (
    GroupMember as PlatformMember,
)
from apps.integrations.models import WebhookEvent
from apps.integrations.simulators import gewe as gewe_sim
from apps.integrations.simulators.ecloud import build_callback
from apps.integrations.webhooks import parse_ecloud, parse_gewe
from apps.wechat_accounts import services as wechat
from apps.wechat_accounts.models import Contact, FriendRequest, GroupMember, WeChatAccount
from tests.conversations.helpers import deliver, ecloud_connection, gewe_connection
from tests.wechat_accounts.factories import WeChatAccountFactory

pytestmark = pytest.mark.django_db

SEED = 20261204
ME = "wxid_fuzz_me"
APP = "wx_fuzz_device"
CUSTOMER = "wxid_fuzz_customer"

NASTY = [
    None,
    "",
    " ",
    "x" * 5000,
    "昵称" * 600,
    "😀" * 400,
    "a\x00b",
    "line\nbreak",
    "javascript:alert(1)",
    "http://exa mple.com/a b",
    "https://" + "a" * 2000 + ".com/x.png",
    "http://[::1",
    "ftp://host/file",
    0,
    -1,
    1,
    2**63,
    10**20,
    1e20,
    -1e20,
    3.5,
    True,
    False,
    [],
    [1, 2],
    {},
    {"a": 1},
    "NaN",
    "1e20",
    "wxid with space",
    "wxid_" + "z" * 300,
    "<xml>",
    "%s%n",
    "\u202eevil",
]


def nasty_values(rng: random.Random, count: int) -> list:
    values = list(NASTY)
    while len(values) < count:
        base = rng.choice(NASTY)
        if isinstance(base, str):
            values.append(base * rng.randint(1, 3) + rng.choice(["", "\t", "\x01", "é"]))
        else:
            values.append(rng.choice([base, str(base), [base]]))
    rng.shuffle(values)
    return values


# -- the helpers themselves ------------------------------------------------------------------


def test_helpers_never_raise_and_respect_limits():
    rng = random.Random(SEED)
    for value in nasty_values(rng, 300):
        text = pd.text(value, 50, field="f")
        assert isinstance(text, str) and len(text) <= 50 and "\x00" not in text
        url = pd.url(value, 100, field="f")
        assert url == "" or (url.startswith(("http://", "https://")) and len(url) <= 100)
        ident = pd.ident(value, 64, field="f")
        assert ident == "" or (len(ident) <= 64 and " " not in ident)
        number = pd.small_int(value, field="f", high=9)
        assert number is None or 0 <= number <= 9
        when = pd.timestamp(value, field="f")
        assert when is None or 2000 <= when.year <= 2100
        assert pd.enum(value, ["a", "b"], "a", field="f") in ("a", "b")
        assert all(len(i) <= 64 for i in pd.id_list(value, 64, field="f"))


def test_send_answers_with_fuzzed_fields_never_raise():
    """The platform accepted the message when its answer arrives: an odd id or time in it must
    not make the send look failed (it would be sent again). Shared by GeWe and E云管家."""
    rng = random.Random(SEED)
    values = nasty_values(rng, 200)
    for i, value in enumerate(values):
        data = {
            "toWxid": values[(i + 1) % len(values)],
            "msgId": value,
            "newMsgId": values[(i + 2) % len(values)],
            "createTime": values[(i + 3) % len(values)],
        }
        sent = sent_message("send_text", data, to=CUSTOMER, to_key="toWxid")
        assert sent.to and len(sent.to) <= 128
        assert len(sent.msg_id) <= 64 and len(sent.new_msg_id) <= 64
        assert isinstance(sent.create_time, int)
    # A 64-bit id that arrived as a float lost its precision: dropped, not raised.
    assert sent_message("x", {"newMsgId": 1e18, "msgId": 7}, to="w", to_key="wcId").msg_id == "7"
    assert sent_message("x", {"newMsgId": 1e18}, to="w", to_key="wcId").new_msg_id == ""
    exact = sent_message("x", {"newMsgId": 2**63 - 1}, to="w", to_key="toWxid")
    assert exact.new_msg_id == str(2**63 - 1)


def test_dropped_and_cut_values_are_counted():
    pd.text("x" * 10, 5, field="fuzz.nickname")
    pd.url("javascript:alert(1)", 100, field="fuzz.avatar")
    counts = pd.platform_data_counts()
    assert counts["fuzz.nickname:cut"] == 1 and counts["fuzz.avatar:dropped"] == 1
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("platform_data_report", "--reset", stdout=out)
    assert "fuzz.nickname:cut\t1" in out.getvalue()
    assert pd.platform_data_counts() == {}


# -- webhook parsers and inbound processing ---------------------------------------------------


def _gewe_payload(rng: random.Random) -> tuple[dict, str]:
    payload = gewe_sim.build_add_msg(
        app_id=APP,
        account_wxid=ME,
        from_wxid=CUSTOMER,
        to_wxid=ME,
        msg_type=1,
        content="你好",
        msg_id=rng.randint(1, 2**31),
        new_msg_id=rng.randint(1, 2**62),
    )
    return payload, "gewe"


COSMETIC_GEWE = ["PushContent", "MsgSource", "CreateTime", "Status", "ImgStatus", "MsgSeq"]
COSMETIC_ECLOUD = ["timestamp", "msgId", "memberCount", "toUser"]


@pytest.fixture
def gewe_account(org, simulators_clean):
    conn = gewe_connection(org, simulators_clean)
    return WeChatAccountFactory(
        org=org,
        connection=conn,
        device_id=APP,
        wxid=ME,
        status=WeChatAccount.Status.ONLINE,
        private_reply_policy="off",
    )


@pytest.fixture
def ecloud_account(org, simulators_clean):
    conn = ecloud_connection(org, simulators_clean)
    return WeChatAccountFactory(
        org=org,
        connection=conn,
        device_id="w-fuzz",
        wxid=ME,
        status=WeChatAccount.Status.ONLINE,
        private_reply_policy="off",
    )


def test_parsers_survive_every_field_fuzzed():
    rng = random.Random(SEED)
    values = nasty_values(rng, 60)
    for field in [*COSMETIC_GEWE, "Content", "MsgType", "FromUserName", "NewMsgId", "MsgId"]:
        for value in values:
            payload, _p = _gewe_payload(rng)
            payload["Data"][field] = value
            try:
                parse_gewe(payload)
            except Exception as exc:  # noqa: BLE001 - only the typed rejection is allowed
                assert type(exc).__name__ in ("WebhookRejected",), (field, value, exc)
    for field in [*COSMETIC_ECLOUD, "content", "fromUser", "fromGroup", "newMsgId", "self"]:
        for value in values:
            data = {
                "wId": "w-fuzz",
                "fromUser": CUSTOMER,
                "toUser": ME,
                "content": "你好",
                "msgId": 1,
                "newMsgId": rng.randint(1, 2**62),
                "timestamp": 1640594470,
                "self": False,
                field: value,
            }
            payload = build_callback(account="acct", message_type="60001", wcid=ME, data=data)
            try:
                parse_ecloud(payload)
            except Exception as exc:  # noqa: BLE001
                assert type(exc).__name__ in ("WebhookRejected",), (field, value, exc)


# The JSON type each cosmetic field has on the platform. A value of that type (however long,
# absurd or malformed) must never cost the message. A value of another type may be refused
# by the webhook's type check (issue 18: 400, stored as rejected with the reason), never 500.
GEWE_TYPES = {
    "PushContent": str,
    "MsgSource": str,
    "CreateTime": int,
    "Status": int,
    "ImgStatus": int,
    "MsgSeq": int,
}
ECLOUD_TYPES = {"timestamp": int, "msgId": int, "memberCount": int, "toUser": str}


def _right_type(value, expected) -> bool:
    # A NUL anywhere refuses the whole body (issue 18: PostgreSQL cannot store it).
    if isinstance(value, str) and "\x00" in value:
        return False
    return isinstance(value, expected) and not isinstance(value, bool)


def _check(response, value, expected, stored_before: int) -> int:
    """Returns how many messages must be stored now."""
    if _right_type(value, expected):
        assert response.status_code == 200, (value, response.content)
        return stored_before + 1
    assert response.status_code in (200, 400), (value, response.content)
    return stored_before + (1 if response.status_code == 200 else 0)


def test_inbound_messages_with_fuzzed_cosmetic_fields_are_kept(
    gewe_account, ecloud_account, django_capture_on_commit_callbacks
):
    rng = random.Random(SEED + 1)
    values = nasty_values(rng, 60) + [
        "x" * 20000,
        "\x00" * 10,
        10**20,
        2**64 + 1,
        -(2**40),
        0,
    ]
    expected = 0
    cap = django_capture_on_commit_callbacks
    gewe_fields, ecloud_fields = list(GEWE_TYPES), list(ECLOUD_TYPES)
    for index, value in enumerate(values):
        field = gewe_fields[index % len(gewe_fields)]
        payload, _p = _gewe_payload(rng)
        payload["Data"][field] = value
        payload["Data"]["Content"] = {"string": f"gewe {index}"}
        response = deliver_any(gewe_account.connection, payload, cap)
        expected = _check(response, value, GEWE_TYPES[field], expected)
        field = ecloud_fields[index % len(ecloud_fields)]
        data = {
            "wId": "w-fuzz",
            "fromUser": CUSTOMER,
            "toUser": ME,
            "content": f"ecloud {index}",
            "msgId": 1,
            "newMsgId": rng.randint(1, 2**62),
            "timestamp": 1640594470,
            "self": False,
            field: value,
        }
        payload = build_callback(account="acct", message_type="60001", wcid=ME, data=data)
        response = deliver_any(ecloud_account.connection, payload, cap)
        expected = _check(response, value, ECLOUD_TYPES[field], expected)
    # Every accepted message was stored: a cosmetic value never costs the message.
    assert Message.objects.filter(direction="inbound").count() == expected
    assert not WebhookEvent.objects.filter(status=WebhookEvent.Status.FAILED).exists()
    for message in Message.objects.all():
        assert message.platform_created_at is None or 2000 <= message.platform_created_at.year


def deliver_any(connection, payload, capture):
    from tests.conversations.helpers import post_webhook

    with capture(execute=True):
        return post_webhook(connection, payload)


def test_group_message_with_fuzzed_sender_name_is_kept(
    gewe_account, django_capture_on_commit_callbacks
):
    rng = random.Random(SEED + 2)
    names = [v for v in nasty_values(rng, 60) if isinstance(v, str) and "\x00" not in v][:20]
    for index, value in enumerate(names):
        payload = gewe_sim.build_add_msg(
            app_id=APP,
            account_wxid=ME,
            from_wxid="123@chatroom",
            to_wxid=ME,
            msg_type=1,
            content=f"wxid_member:\nhi {index}",
            msg_id=index + 1,
            new_msg_id=10_000 + index,
            push_content=f"{value} : hi",
        )
        deliver(gewe_account.connection, payload, django_capture_on_commit_callbacks)
    messages = Message.objects.filter(direction="inbound")
    assert messages.count() == len(names)
    assert all(len(m.sender_name) <= 200 and "\x00" not in m.sender_name for m in messages)


# -- storing services with fuzzed client results ---------------------------------------------


class FuzzClient:
    """A platform client whose every answer carries hostile values."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.values = nasty_values(rng, 120)

    def v(self):
        return self.rng.choice(self.values)

    def check_login(self, device_id, uuid=None):
        return LoginStatus(
            state="logged_in",
            device_id=self.v(),
            wxid=self.v(),
            nickname=self.v(),
            raw={"headImgUrl": self.v()},
        )

    def set_callback(self, url):
        return None

    def list_contacts(self, device):
        good = [f"wxid_ok{i}" for i in range(20)]
        return ContactList(
            friends=good + [self.v() for _ in range(20)],
            chatrooms=["1@chatroom", self.v(), "wxid_" + "q" * 200],
            ghs=[self.v()],
        )

    def list_labels(self, device):
        return [Label(label_id=self.v(), name=self.v()) for _ in range(10)] + [
            Label(label_id="1", name="VIP")
        ]

    def get_contacts_brief(self, device, wxids):
        return [
            PlatformContact(
                wxid=wxid,
                nickname=self.v(),
                remark=self.v(),
                alias=self.v(),
                sex=self.v(),
                avatar_url=self.v(),
                label_ids=self.v() if self.rng.random() < 0.7 else ["1"],
            )
            for wxid in wxids
        ] + [PlatformContact(wxid=self.v(), nickname=self.v())]

    def list_group_members(self, device, room):
        return [
            PlatformMember(
                wxid=self.v() if i % 3 else f"wxid_m{i}",
                nickname=self.v(),
                display_name=self.v(),
                inviter=self.v(),
            )
            for i in range(30)
        ]


@pytest.mark.parametrize("seed", range(5))
def test_login_with_fuzzed_profile_always_completes(org, seed, monkeypatch):
    from apps.wechat_accounts.services import login

    account = WeChatAccountFactory(
        org=org, device_id=APP, status=WeChatAccount.Status.PENDING_LOGIN
    )
    client = FuzzClient(random.Random(SEED + seed))
    monkeypatch.setattr(login, "client_for_account", lambda *a, **k: client)
    monkeypatch.setattr(login, "account_sync_contacts_start", lambda **k: None)
    assert wechat.account_login_poll(org_id=org.pk, account_id=account.pk) == "logged_in"
    account.refresh_from_db()
    assert account.status == WeChatAccount.Status.ONLINE
    assert account.device_id and len(account.nickname) <= 200
    assert account.avatar_url == "" or account.avatar_url.startswith("http")
    # The status endpoint answers (the defect: it answered 400 forever).
    assert wechat.account_login_status(org=org, account_id=account.pk)


@pytest.mark.parametrize("seed", range(3))
def test_contact_sync_with_fuzzed_contacts_completes(org, seed, monkeypatch):
    from apps.wechat_accounts.services import contacts

    account = WeChatAccountFactory(org=org, device_id=APP, status=WeChatAccount.Status.ONLINE)
    client = FuzzClient(random.Random(SEED + 10 + seed))
    monkeypatch.setattr(contacts, "client_for_account", lambda *a, **k: client)
    result = wechat.contacts_sync(org_id=org.pk, account_id=account.pk)
    account.refresh_from_db()
    assert account.contacts_sync_state == WeChatAccount.SyncState.DONE
    stored = set(Contact.objects.filter(account=account).values_list("wxid", flat=True))
    assert {f"wxid_ok{i}" for i in range(20)} <= stored
    assert "1@chatroom" in stored and result.groups >= 1
    assert all(len(w) <= 128 and " " not in w for w in stored)
    members = GroupMember.objects.filter(group__account=account)
    assert members.filter(member_wxid="wxid_m0").exists()
    assert all(len(m.nickname) <= 200 for m in members)


def test_contact_upsert_and_friend_requests_with_fuzzed_values(org):
    account = WeChatAccountFactory(org=org, device_id=APP, status=WeChatAccount.Status.ONLINE)
    rng = random.Random(SEED + 20)
    values = nasty_values(rng, 80)
    for index, value in enumerate(values):
        contact = wechat.contact_upsert(
            org=org,
            account=account,
            wxid=f"wxid_up{index}",
            nickname=value,
            remark=value,
            alias=value,
            avatar_url=value,
            sex=value,
        )
        assert contact.pk and len(contact.nickname) <= 200
        request = wechat.friend_request_record(
            org=org,
            account=account,
            v3=f"v3_{index}",
            v4=value,
            scene=value,
            from_wxid=value,
            nickname=value,
            content=value,
        )
        assert request.pk
    assert FriendRequest.objects.filter(account=account).count() == len(values)


def test_timestamps_in_messages_are_plausible_or_empty():
    now = datetime(2026, 6, 1).timestamp()
    assert pd.timestamp(int(now), field="t").year == 2026
    assert pd.timestamp(int(now * 1000), field="t").year == 2026  # milliseconds
    assert pd.timestamp(10**20, field="t") is None
    assert pd.timestamp(-5, field="t") is None
