"""Hostile and malformed webhook bodies (issue 18): answered 400 and stored as rejected in a
storable form, nothing else changed; wrong field types never acted on; over-long values keep
the message."""

from __future__ import annotations

import json

import pytest

from apps.conversations.models import Conversation, Message
from apps.integrations.models import WebhookEvent
from apps.integrations.simulators import gewe as gewe_sim
from apps.integrations.simulators.ecloud import build_callback
from apps.wechat_accounts.models import Contact, WeChatAccount
from tests.conversations.helpers import ecloud_connection, post_webhook
from tests.wechat_accounts.factories import WeChatAccountFactory

pytestmark = pytest.mark.django_db

ME = "wxid_sales_me"
APP = "wx_device_0001"
CUSTOMER = "wxid_customer01"


def _text(**data_changes) -> dict:
    payload = gewe_sim.build_add_msg(
        app_id=APP,
        account_wxid=ME,
        from_wxid=CUSTOMER,
        to_wxid=ME,
        msg_type=1,
        content="你好",
        msg_id=1040356095,
        new_msg_id=7773749793478223190,
    )
    payload["Data"].update(data_changes)
    return payload


def _raw(**data_changes) -> bytes:
    return json.dumps(_text(**data_changes)).encode()


def _nothing_else_changed():
    assert not Contact.objects.exists()
    assert not Conversation.objects.exists()
    assert not Message.objects.exists()


HOSTILE = {
    "deep-nesting": b'{"TypeName":"AddMsg","Data":' + b"[" * 50000 + b"]" * 50000 + b"}",
    "moderately-deep": b'{"TypeName":"AddMsg","Data":{"x":' + b"[" * 100 + b"]" * 100 + b"}}",
    "nan": _raw(CreateTime=0).replace(b'"CreateTime": 0', b'"CreateTime": NaN'),
    "infinity": _raw(CreateTime=0).replace(b'"CreateTime": 0', b'"CreateTime": -Infinity'),
    "overflowing-float": _raw(CreateTime=0).replace(b'"CreateTime": 0', b'"CreateTime": 1e400'),
    "nul-escape": _raw(Content={"string": "a\u0000b"}),
    "nul-byte": b'{"TypeName":"AddMsg","Data":{"Content":"a\x00b"}}',
    "lone-surrogate": _raw().replace(b'"\\u4f60\\u597d"', b'"\\ud800"'),
    "invalid-utf8": b'{"TypeName":"AddMsg","Data":{"Content":"\xff\xfe"}}',
    "id-out-of-range": _raw(NewMsgId=2**70),
    "id-negative": _raw(NewMsgId=-5),
    "id-garbage": _raw(NewMsgId="abc"),
    "id-float": _raw(NewMsgId=1e20),
    "id-bool": _raw(NewMsgId=True),
    "from-list": _raw(FromUserName=[1, 2]),
    "from-object": _raw(FromUserName={"string": ["x"]}),
    "content-number": _raw(Content=12345),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_gewe_body_is_400_stored_rejected_and_changes_nothing(
    conn, acct, name, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(conn, None, raw=HOSTILE[name])
    assert response.status_code == 400, (name, response.content)
    assert response.json()["error"]["code"] == "invalid_webhook"
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.REJECTED
    assert event.error
    assert "\x00" not in event.raw_body
    _nothing_else_changed()


def test_the_same_body_with_sane_values_is_accepted(conn, acct, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(conn, _text())
    assert response.status_code == 200
    assert Message.objects.get().text == "你好"


def test_ecloud_self_as_a_string_is_refused_not_taken_as_self_sent(
    org, simulators_clean, django_capture_on_commit_callbacks
):
    connection = ecloud_connection(org, simulators_clean)
    WeChatAccountFactory(
        org=org,
        connection=connection,
        device_id="12490001",
        wxid=ME,
        status=WeChatAccount.Status.ONLINE,
    )
    data = {
        "wId": "12490001",
        "fromUser": CUSTOMER,
        "toUser": ME,
        "content": "你好",
        "msgId": 1052001123,
        "newMsgId": 3166120021925175285,
        "timestamp": 1640594470,
        "self": "false",
    }
    body = build_callback(account="acct", message_type="60001", wcid=ME, data=data)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(connection, body)
    assert response.status_code == 400
    assert "data.self" in WebhookEvent.objects.get().error
    _nothing_else_changed()
    data["self"] = False
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(connection, body | {"data": data})
    assert response.status_code == 200
    message = Message.objects.get()
    assert message.direction == Message.Direction.INBOUND


def test_over_long_values_keep_the_message(conn, acct, django_capture_on_commit_callbacks):
    long_wxid = "wxid_" + "x" * 200
    payload = _text(FromUserName={"string": long_wxid}, CreateTime=10**20)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(conn, payload)
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.PROCESSED, event.error
    message = Message.objects.get()
    assert message.text == "你好"
    assert message.created_at is not None
    contact = Contact.objects.get()
    assert contact.wxid == long_wxid[:128]


def test_timestamp_of_1e20_as_a_float_keeps_the_message(
    conn, acct, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_webhook(conn, _text(CreateTime=1e20))
    assert response.status_code == 200
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PROCESSED
    assert Message.objects.count() == 1
