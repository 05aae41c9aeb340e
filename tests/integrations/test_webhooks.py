"""Webhook ingestion: the endpoints, the inbox row, dedupe, rejection, and parsing of every event
kind from the platforms' real payload shapes (the simulators' builders)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.conversations.models import Conversation, Message
from apps.integrations import webhooks
from apps.integrations.models import WebhookEvent
from apps.integrations.simulators import gewe as gewe_sim
from apps.integrations.simulators.ecloud import build_callback
from apps.wechat_accounts.models import Contact, FriendRequest, WeChatAccount
from tests.conversations.helpers import deliver, ecloud_connection, gewe_connection, post_webhook
from tests.wechat_accounts.factories import WeChatAccountFactory

pytestmark = pytest.mark.django_db

ME = "wxid_sales_me"
APP = "wx_device_0001"
CUSTOMER = "wxid_customer01"
ROOM = "12345678901@chatroom"


@pytest.fixture
def conn(org, simulators_clean):
    return gewe_connection(org, simulators_clean)


@pytest.fixture
def acct(org, conn):
    return WeChatAccountFactory(
        org=org,
        connection=conn,
        device_id=APP,
        wxid=ME,
        nickname="小王",
        status=WeChatAccount.Status.ONLINE,
        private_reply_policy="off",
        group_reply_policy="off",
    )


_ids = iter(range(1, 10**6))


def add_msg(msg_type=1, content="你好", *, from_wxid=CUSTOMER, to_wxid=ME, **kwargs):
    n = next(_ids)
    return gewe_sim.build_add_msg(
        app_id=APP,
        account_wxid=ME,
        from_wxid=from_wxid,
        to_wxid=to_wxid,
        msg_type=msg_type,
        content=content,
        msg_id=1040356095 + n,
        new_msg_id=7773749793478223190 + n * 7919,
        **kwargs,
    )


# -- the endpoint ----------------------------------------------------------------------------


def test_unknown_secret_is_404(conn):
    response = post_webhook(conn, {"TypeName": "AddMsg"})
    assert response.status_code == 200
    bad = conn.webhook_path.replace(conn.webhook_secret, "nope-" + "x" * 30)
    from django.test import Client

    assert Client().post(bad, data="{}", content_type="application/json").status_code == 404
    # A GeWe secret on the E云 path is unknown too.
    ecloud_path = f"/api/v1/integrations/ecloud/callback/{conn.webhook_secret}/"
    assert Client().post(ecloud_path, data="{}", content_type="application/json").status_code == 404


def test_body_over_one_mebibyte_is_413(conn):
    body = b'{"TypeName":"AddMsg","x":"' + b"a" * (1024 * 1024) + b'"}'
    response = post_webhook(conn, None, raw=body)
    assert response.status_code == 413
    assert WebhookEvent.objects.count() == 0


def test_bad_json_is_400_and_recorded_truncated(conn, settings):
    settings.WEBHOOK_REJECTED_BODY_CHARS = 50
    response = post_webhook(conn, None, raw=b"not json " + b"z" * 500)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_webhook"
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.REJECTED
    assert event.org_id == conn.org_id and len(event.raw_body) == 50
    assert event.raw_body.startswith("not json")


def test_wrong_shape_is_400(conn):
    assert post_webhook(conn, {"hello": "world"}).status_code == 400
    assert post_webhook(conn, [1, 2]).status_code == 400
    assert WebhookEvent.objects.filter(status=WebhookEvent.Status.REJECTED).count() == 2


def test_ping_answers_200_without_a_row(conn):
    response = post_webhook(conn, gewe_sim.build_ping("token"))
    assert response.status_code == 200 and response.json()["ping"] is True
    assert WebhookEvent.objects.count() == 0


def test_event_is_stored_before_the_answer_and_processed_on_commit(
    conn, acct, django_capture_on_commit_callbacks
):
    payload = add_msg(content="在吗")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post_webhook(conn, payload)
    assert response.status_code == 200
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.RECEIVED
    assert event.dedupe_key == f"msg:{APP}:{payload['Data']['NewMsgId']}"
    assert event.payload["Data"]["NewMsgId"] == payload["Data"]["NewMsgId"]  # int64 intact
    assert not Message.objects.exists()
    for callback in callbacks:
        callback()
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED and event.attempts == 1
    message = Message.objects.get()
    assert message.text == "在吗" and message.platform_msg_id == str(payload["Data"]["NewMsgId"])


def test_redelivery_is_a_no_op(conn, acct, django_capture_on_commit_callbacks):
    payload = add_msg(content="hello")
    for _ in range(3):
        deliver(conn, payload, django_capture_on_commit_callbacks)
    assert WebhookEvent.objects.count() == 1
    assert Message.objects.count() == 1
    conversation = Conversation.objects.get()
    assert conversation.unread_count == 1


def test_process_task_twice_is_idempotent(conn, acct, django_capture_on_commit_callbacks):
    deliver(conn, add_msg(content="once"), django_capture_on_commit_callbacks)
    event = WebhookEvent.objects.get()
    from apps.integrations.tasks import webhook_event_process

    assert webhook_event_process(event_id=event.pk) == "skipped"
    assert Message.objects.count() == 1


def test_unknown_event_is_ignored_with_its_type(conn, acct, django_capture_on_commit_callbacks):
    deliver(
        conn,
        {"TypeName": "FinderMsg", "Appid": APP, "Wxid": ME, "Data": {}},
        django_capture_on_commit_callbacks,
    )
    event = WebhookEvent.objects.get()
    assert event.status == WebhookEvent.Status.IGNORED
    assert "FinderMsg" in event.error and event.event_type == "FinderMsg"
    deliver(conn, add_msg(msg_type=9999, content="?"), django_capture_on_commit_callbacks)
    event = WebhookEvent.objects.get(event_type="AddMsg:9999")
    assert event.status == WebhookEvent.Status.IGNORED and "9999" in event.error


def test_event_for_unknown_device_is_ignored(conn, django_capture_on_commit_callbacks):
    deliver(conn, add_msg(content="hi"), django_capture_on_commit_callbacks)
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.IGNORED
    assert not Message.objects.exists()


def test_secret_of_org_a_never_touches_org_b(
    org, other_org, conn, acct, simulators_clean, django_capture_on_commit_callbacks
):
    other_conn = gewe_connection(other_org, simulators_clean)
    other_acct = WeChatAccountFactory(
        org=other_org,
        connection=other_conn,
        device_id=APP,
        wxid=ME,
        status=WeChatAccount.Status.ONLINE,
    )
    deliver(conn, add_msg(content="for A"), django_capture_on_commit_callbacks)
    assert Message.objects.filter(org=org).count() == 1
    assert not Message.objects.filter(org=other_org).exists()
    assert not Contact.objects.filter(account=other_acct).exists()
    assert WebhookEvent.objects.get().org_id == org.pk


def test_stuck_events_are_enqueued_again(conn, acct, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        post_webhook(conn, add_msg(content="lost task"))
    event = WebhookEvent.objects.get()
    WebhookEvent.objects.filter(pk=event.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert webhooks.webhook_events_requeue_stuck_all_orgs() == 1
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    assert Message.objects.count() == 1
    assert webhooks.webhook_events_requeue_stuck_all_orgs() == 0


def test_processing_error_counts_attempts_then_fails(conn, acct, monkeypatch, settings):
    settings.WEBHOOK_MAX_ATTEMPTS = 2
    response = post_webhook(conn, add_msg(content="boom"))
    assert response.status_code == 200
    event = WebhookEvent.objects.get()

    def explode(**kwargs):
        raise RuntimeError("database hiccup")

    monkeypatch.setattr("apps.conversations.services.inbound_message_record", explode)
    for expected in (WebhookEvent.Status.RECEIVED, WebhookEvent.Status.FAILED):
        with pytest.raises(RuntimeError):
            webhooks.webhook_event_process(event_id=event.pk)
        event.refresh_from_db()
        assert event.status == expected
    assert event.attempts == 2 and "hiccup" in event.error
    assert not Message.objects.exists()


# -- parsing: GeWe -----------------------------------------------------------------------------


def _parse(payload):
    return webhooks.parse_gewe(json.loads(json.dumps(payload)))


def test_parse_private_text_keeps_64_bit_ids():
    payload = add_msg(content="你好")
    parsed = _parse(payload)
    assert parsed.kind == "message" and parsed.device_id == APP and parsed.account_wxid == ME
    msg = parsed.message
    assert (msg.chat_wxid, msg.kind, msg.text, msg.is_group, msg.self_sent) == (
        CUSTOMER,
        "text",
        "你好",
        False,
        False,
    )
    assert (
        msg.platform_msg_id == str(payload["Data"]["NewMsgId"]) and int(msg.platform_msg_id) > 2**53
    )


def test_parse_group_text_with_sender_prefix_and_mention():
    sim = gewe_sim.GeWeSimulator.__new__(gewe_sim.GeWeSimulator)  # builders only
    payload = add_msg(
        content=f"wxid_member9:\n@小王{gewe_sim.MENTION_END}价格多少",
        from_wxid=ROOM,
        msg_source=gewe_sim._at_source([ME]),
        push_content="张三在群聊中@了你",
    )
    del sim
    msg = _parse(payload).message
    assert msg.is_group and msg.chat_wxid == ROOM
    assert msg.sender_wxid == "wxid_member9"
    assert msg.text == f"@小王{gewe_sim.MENTION_END}价格多少"
    assert ME in msg.at_wxids


def test_parse_group_sender_name_from_push_content():
    payload = add_msg(content="wxid_m:\nhi all", from_wxid=ROOM, push_content="李四 : hi all")
    msg = _parse(payload).message
    assert msg.sender_name == "李四" and msg.at_wxids == []


@pytest.mark.parametrize(
    ("msg_type", "content", "kind", "check"),
    [
        (3, gewe_sim.image_xml(md5="abc"), "image", lambda m: m.meta["md5"] == "abc"),
        (34, gewe_sim.voice_xml(3000), "voice", lambda m: m.meta["voice_length_ms"] == "3000"),
        (
            43,
            '<msg><videomsg playlength="9" md5="v1" /></msg>',
            "video",
            lambda m: m.meta["play_length"] == "9",
        ),
        (
            47,
            '<msg><emoji md5="e1" cdnurl="http://e/1" /></msg>',
            "emoji",
            lambda m: m.meta["md5"] == "e1",
        ),
        (
            49,
            gewe_sim.appmsg_xml(6, "报价单.pdf", file_ext="pdf", total_len=1024),
            "file",
            lambda m: m.text == "报价单.pdf" and m.meta["file"]["ext"] == "pdf",
        ),
        (
            49,
            gewe_sim.appmsg_xml(5, "新品", des="看看", url="https://shop.example.com/p"),
            "link",
            lambda m: (
                m.media_url == "https://shop.example.com/p" and m.meta["description"] == "看看"
            ),
        ),
        (49, gewe_sim.appmsg_xml(33, "小程序"), "link", lambda m: "mini_program" in m.meta),
        (
            49,
            gewe_sim.appmsg_xml(5, "张三邀请你加入群聊"),
            "system",
            lambda m: m.meta.get("group_invite"),
        ),
        (49, gewe_sim.appmsg_xml(2001, ""), "system", lambda m: m.text == "[红包]"),
        (
            10000,
            "张三邀请李四加入了群聊",
            "system",
            lambda m: m.meta["group_event"] == "member_joined",
        ),
        (
            10002,
            '<sysmsg type="revokemsg"><revokemsg><newmsgid>99</newmsgid>'
            "<replacemsg><![CDATA[张三撤回了一条消息]]></replacemsg></revokemsg></sysmsg>",
            "system",
            lambda m: m.meta["revoked_msg_id"] == "99" and "撤回" in m.text,
        ),
        (
            10002,
            '<sysmsg type="sysmsgtemplate"><sysmsgtemplate><content_template type="tmpl">'
            '<template><![CDATA["$adder$"邀请"$names$"加入了群聊]]></template></content_template>'
            "</sysmsgtemplate></sysmsg>",
            "system",
            lambda m: m.meta["group_event"] == "member_joined",
        ),
    ],
)
def test_parse_every_message_kind(msg_type, content, kind, check):
    msg = _parse(add_msg(msg_type=msg_type, content=content)).message
    assert msg.kind == kind
    assert check(msg)


def test_parse_quote_reply():
    xml = (
        '<?xml version="1.0"?>\n<msg><appmsg appid=""><title>要这个</title><type>57</type>'
        "<refermsg><type>1</type><svrid>7773749793478223190</svrid><fromusr>wxid_c</fromusr>"
        "<displayname>客户</displayname><content>有红色吗</content></refermsg></appmsg></msg>"
    )
    msg = _parse(add_msg(msg_type=49, content="wxid_c:\n" + xml)).message
    assert msg.kind == "text" and msg.text == "要这个"
    assert msg.meta["quote"] == {
        "name": "客户",
        "text": "有红色吗",
        "msg_id": "7773749793478223190",
        "from": "wxid_c",
    }


def test_parse_file_incoming_74_is_ignored():
    parsed = _parse(add_msg(msg_type=49, content=gewe_sim.appmsg_xml(74, "big.zip")))
    assert parsed.kind == "ignored" and "74" in parsed.reason


def test_parse_friend_request():
    xml = gewe_sim.friend_request_xml(
        from_wxid="wxid_new",
        nickname="新客户",
        v3="v3_abc@stranger",
        v4="v4_def@stranger",
        scene=6,
        content="你好",
    )
    parsed = _parse(add_msg(msg_type=37, content=xml, from_wxid="fmessage"))
    assert parsed.kind == "friend_request"
    assert parsed.data == {
        "v3": "v3_abc@stranger",
        "v4": "v4_def@stranger",
        "scene": 6,
        "from_wxid": "wxid_new",
        "nickname": "新客户",
        "content": "你好",
    }


def test_parse_self_sent_official_status_and_contacts():
    own = _parse(add_msg(content="我来回复", from_wxid=ME, to_wxid=CUSTOMER)).message
    assert own.self_sent and own.chat_wxid == CUSTOMER
    assert _parse(add_msg(from_wxid="gh_abc123")).kind == "ignored"
    assert _parse(add_msg(msg_type=51, content="<msg/>")).kind == "ignored"
    mod = _parse(
        gewe_sim.build_mod_contacts(app_id=APP, account_wxid=ME, wxid="wxid_x", nickname="X")
    )
    assert mod.kind == "contact_update" and mod.data["nickname"] == "X"
    dele = _parse(gewe_sim.build_del_contacts(app_id=APP, account_wxid=ME, wxid="wxid_x"))
    assert dele.kind == "contact_delete"
    assert _parse(gewe_sim.build_offline(app_id=APP, account_wxid=ME)).kind == "offline"
    lower = {"type_name": "Offline", "appid": APP, "wxid": ME}
    assert _parse(lower).kind == "offline"


def test_parse_rejects_non_gewe_shapes():
    for bad in ({"foo": 1}, {"TypeName": "AddMsg", "Data": {"MsgType": 1}}, {"TypeName": 3}):
        with pytest.raises(webhooks.WebhookRejected):
            webhooks.parse_gewe(bad)


# -- parsing: E云管家 --------------------------------------------------------------------------


def ecloud(message_type, **data):
    base = {
        "wId": "w-1",
        "fromUser": CUSTOMER,
        "toUser": ME,
        "content": "你好",
        "msgId": 1,
        "newMsgId": 3166120021925175285,
        "timestamp": 1640594470,
        "self": False,
    }
    base.update(data)
    return build_callback(account="acct", message_type=message_type, wcid=ME, data=base)


def test_parse_ecloud_private_group_self_and_kinds():
    msg = webhooks.parse_ecloud(ecloud("60001")).message
    assert (msg.kind, msg.text, msg.chat_wxid, msg.platform_msg_id) == (
        "text",
        "你好",
        CUSTOMER,
        "3166120021925175285",
    )
    group = webhooks.parse_ecloud(ecloud("80001", fromGroup=ROOM, fromUser="wxid_m")).message
    assert group.is_group and group.chat_wxid == ROOM and group.sender_wxid == "wxid_m"
    own = webhooks.parse_ecloud(ecloud("60001", fromUser=ME, toUser=CUSTOMER, sel=True)).message
    assert own.self_sent and own.chat_wxid == CUSTOMER
    assert (
        webhooks.parse_ecloud(ecloud("60002", content=gewe_sim.image_xml())).message.kind == "image"
    )
    voice = webhooks.parse_ecloud(ecloud("60004", content=gewe_sim.voice_xml(), voiceLength=2540))
    assert voice.message.kind == "voice" and voice.message.meta["voice_length_ms"] == 2540
    link = webhooks.parse_ecloud(
        ecloud("60007", content=gewe_sim.appmsg_xml(5, "T", url="https://x.example.com"))
    )
    assert link.message.kind == "link" and link.message.text == "T"
    quote = webhooks.parse_ecloud(ecloud("60014", content="回复内容", title="回复内容"))
    assert quote.message.kind == "text" and quote.message.text == "回复内容"
    assert (
        webhooks.parse_ecloud(ecloud("60006", content="<msg><emoji md5='1'/></msg>")).message.kind
        == "emoji"
    )


def test_parse_ecloud_friend_request_offline_group_change_unknown():
    fr = webhooks.parse_ecloud(
        build_callback(
            account="a",
            message_type="30001",
            wcid=ME,
            data={"wId": "w", "v1": "v3_x", "v2": "v4_y", "scene": 6},
        )
    )
    assert fr.kind == "friend_request" and fr.data["v3"] == "v3_x" and fr.data["scene"] == 6
    off = webhooks.parse_ecloud(
        build_callback(account="a", message_type="30000", wcid=ME, data={"wId": "w", "reason": "x"})
    )
    assert off.kind == "offline" and off.reason == "x"
    change = webhooks.parse_ecloud(
        build_callback(
            account="a",
            message_type="85008",
            wcid=ME,
            data={"fromGroup": ROOM, "content": "张三加入了群聊", "newMsgId": 5},
        )
    )
    assert change.message.kind == "system" and change.message.meta["group_event"] == "member_joined"
    assert webhooks.parse_ecloud(ecloud("70001")).kind == "ignored"
    with pytest.raises(webhooks.WebhookRejected):
        webhooks.parse_ecloud({"data": {}})


# -- end to end per event kind ----------------------------------------------------------------


def test_every_gewe_event_reaches_the_right_rows(conn, acct, django_capture_on_commit_callbacks):
    cap = django_capture_on_commit_callbacks
    deliver(conn, add_msg(content="文字"), cap)
    deliver(conn, add_msg(msg_type=3, content=gewe_sim.image_xml()), cap)
    deliver(
        conn,
        add_msg(
            content=f"wxid_m:\n@小王{gewe_sim.MENTION_END}hi",
            from_wxid=ROOM,
            msg_source=gewe_sim._at_source([ME]),
        ),
        cap,
    )
    deliver(conn, add_msg(msg_type=10000, content="张三邀请李四加入了群聊", from_wxid=ROOM), cap)
    xml = gewe_sim.friend_request_xml(
        from_wxid="wxid_new",
        nickname="N",
        v3="v3_1@stranger",
        v4="v4_1@stranger",
        scene=6,
        content="hi",
    )
    deliver(conn, add_msg(msg_type=37, content=xml, from_wxid="fmessage"), cap)
    deliver(
        conn,
        gewe_sim.build_mod_contacts(app_id=APP, account_wxid=ME, wxid=CUSTOMER, nickname="老客户"),
        cap,
    )
    deliver(conn, gewe_sim.build_del_contacts(app_id=APP, account_wxid=ME, wxid="wxid_gone"), cap)
    deliver(conn, gewe_sim.build_offline(app_id=APP, account_wxid=ME), cap)

    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}
    private = Conversation.objects.get(contact__wxid=CUSTOMER)
    assert list(private.messages.values_list("kind", flat=True)) == ["text", "image"]
    assert private.unread_count == 2 and private.contact.nickname == "老客户"
    group = Conversation.objects.get(contact__wxid=ROOM)
    assert group.contact.kind == Contact.Kind.GROUP
    texts = list(group.messages.values_list("sender_kind", "mentions_account", "sender_wxid"))
    assert texts == [("customer", True, "wxid_m"), ("system", False, "")]
    assert group.unread_count == 1
    assert FriendRequest.objects.get().from_wxid == "wxid_new"
    acct.refresh_from_db()
    assert acct.status == WeChatAccount.Status.OFFLINE


def test_ecloud_callback_end_to_end(org, simulators_clean, django_capture_on_commit_callbacks):
    conn = ecloud_connection(org, simulators_clean)
    WeChatAccountFactory(
        org=org,
        connection=conn,
        device_id="w-1",
        wxid=ME,
        status=WeChatAccount.Status.ONLINE,
        private_reply_policy="off",
    )
    deliver(conn, ecloud("60001", content="E云你好"), django_capture_on_commit_callbacks)
    deliver(conn, ecloud("60001", content="E云你好"), django_capture_on_commit_callbacks)
    message = Message.objects.get()
    assert message.text == "E云你好" and message.platform_msg_id == "3166120021925175285"
    assert WebhookEvent.objects.get().dedupe_key == f"msg:{ME}:3166120021925175285"


def test_process_task_retries_a_deadlocked_attempt_promptly(monkeypatch):
    """A deadlock rolls the attempt back; the task schedules a retry within a second (not at
    the next recovery sweep). Other errors are not retried by the task."""
    from celery.exceptions import Retry
    from django.db import OperationalError

    from apps.integrations import tasks

    def deadlocked(*, event_id):
        raise OperationalError("deadlock detected")

    retries = []

    def fake_retry(*, exc, countdown):
        retries.append((type(exc).__name__, countdown))
        return Retry(exc=exc, when=countdown)

    monkeypatch.setattr(webhooks, "webhook_event_process", deadlocked)
    monkeypatch.setattr(tasks.webhook_event_process, "retry", fake_retry)
    with pytest.raises(Retry):
        tasks.webhook_event_process.run(event_id=7)
    assert len(retries) == 1
    name, countdown = retries[0]
    assert name == "OperationalError" and 0 < countdown <= 1

    def broken(*, event_id):
        raise ValueError("bad payload")

    monkeypatch.setattr(webhooks, "webhook_event_process", broken)
    with pytest.raises(ValueError):
        tasks.webhook_event_process.run(event_id=7)
    assert len(retries) == 1


def test_process_task_retries_when_the_database_is_out_of_reach(monkeypatch):
    """Too many clients (or a refused connection) fails the attempt AND the claim's release:
    the task still schedules its retry (it used to raise from the release, and the event then
    waited for the sweep after the broker's visibility timeout)."""
    from celery.exceptions import Retry
    from django.db import OperationalError

    from apps.integrations import tasks

    def refused(**kwargs):
        raise OperationalError("sorry, too many clients already")

    retries = []

    def fake_retry(*, exc, countdown):
        retries.append((str(exc), countdown))
        return Retry(exc=exc, when=countdown)

    monkeypatch.setattr(webhooks, "webhook_event_process", refused)
    monkeypatch.setattr(webhooks, "webhook_event_release", refused)
    monkeypatch.setattr(tasks.webhook_event_process, "retry", fake_retry)
    with pytest.raises(Retry):
        tasks.webhook_event_process.run(event_id=7)
    assert [message for message, _countdown in retries] == ["sorry, too many clients already"]
    assert 0 < retries[0][1] <= 1
