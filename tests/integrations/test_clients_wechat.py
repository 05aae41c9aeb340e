"""WeChat platform clients (GeWe, E云管家) against their simulators over real HTTP."""

from __future__ import annotations

import socket
import time

import pytest

from apps.integrations.clients.base import RetryPolicy
from apps.integrations.clients.ecloud import ECloudClient
from apps.integrations.clients.errors import (
    AccountOffline,
    AuthError,
    InvalidRequest,
    NotSupported,
    RequestTimeout,
    Unavailable,
)
from apps.integrations.clients.gewe import GeWeClient


@pytest.fixture
def gewe(fresh_sims, records, sleeps):
    sim = fresh_sims["gewe"]
    client = GeWeClient(
        fresh_sims.urls["gewe"],
        sim.token,
        hosted=True,
        recorder=records.append,
        sleep=sleeps.append,
    )
    return sim, client


def login(sim, client) -> str:
    qr = client.get_login_qr()
    sim.confirm_login(qr.device_id)
    assert client.check_login(qr.device_id, qr.uuid).state == "logged_in"
    return qr.device_id


# -- GeWe -----------------------------------------------------------------------------------


def test_gewe_token_and_qr_login_state_machine(fresh_sims, records):
    sim = fresh_sims["gewe"]
    sim.login_delay = 0.4
    client = GeWeClient(fresh_sims.urls["gewe"], recorder=records.append)
    assert client.fetch_token() == sim.token

    qr = client.get_login_qr()
    assert qr.device_id.startswith("wx_") and len(qr.device_id) == 24
    assert qr.qr_image.startswith("data:image/png;base64,")
    assert qr.qr_data.startswith("http://weixin.qq.com/x/")
    assert client.check_login(qr.device_id, qr.uuid).state == "waiting"
    time.sleep(0.25)
    scanned = client.check_login(qr.device_id, qr.uuid)
    assert scanned.state == "scanned" and scanned.nickname == "销售小王"
    time.sleep(0.2)
    done = client.check_login(qr.device_id, qr.uuid)
    assert done.state == "logged_in"
    assert done.wxid == "wxid_sim_sales01"
    assert client.is_online(qr.device_id) is True
    assert client.list_devices() == [qr.device_id]
    # The hosted request carried the paid-only "type" field only when hosted is set.
    assert "type" not in sim.requests_to("/login/getLoginQrCode")[0].json
    assert all(r.ok for r in records)
    assert [r.operation for r in records][:2] == ["get_token", "get_login_qr"]


def test_gewe_qr_expiry_and_refresh_with_same_app_id(gewe):
    sim, client = gewe
    sim.qr_ttl = 0.2
    sim.login_delay = 10
    qr = client.get_login_qr()
    time.sleep(0.3)
    assert client.check_login(qr.device_id, qr.uuid).state == "expired"
    again = client.get_login_qr(qr.device_id)
    assert again.device_id == qr.device_id and again.uuid != qr.uuid
    assert sim.requests_to("/login/getLoginQrCode")[1].json["appId"] == qr.device_id


def test_gewe_login_errors_are_typed(gewe):
    sim, client = gewe
    with pytest.raises(InvalidRequest, match="设备不存在"):
        client.get_login_qr("wx_doesnotexist000000000")
    device = login(sim, client)
    with pytest.raises(InvalidRequest, match="请勿重复登录"):
        client.get_login_qr(device)


def test_gewe_reconnect_dialog_login_and_logout(gewe):
    sim, client = gewe
    device = login(sim, client)
    # A healthy account answers "无需重连" as an error; the client reports it as logged in.
    assert client.reconnect(device).state == "logged_in"
    sim.set_offline(device, notify=False)
    assert client.is_online(device) is False
    assert client.reconnect(device).state == "logged_in"
    assert client.is_online(device) is True

    client.logout(device)
    assert client.is_online(device) is False
    dialog = client.dialog_login(device)
    assert dialog.device_id == device and dialog.uuid
    sim.confirm_login(device)
    assert client.check_login(device, dialog.uuid).state == "logged_in"


def test_gewe_auth_errors(fresh_sims, records):
    url = fresh_sims.urls["gewe"]
    with pytest.raises(AuthError, match="不可为空"):
        GeWeClient(url).is_online("wx_x")
    with pytest.raises(AuthError, match="不可用或已过期") as info:
        GeWeClient(url, "0" * 32, recorder=records.append).is_online("wx_x")
    assert info.value.provider_code == "500" and not info.value.retryable
    assert len(records) == 1 and records[0].error_class == "AuthError"
    # A stale token on setCallback yields the bare {"ret":500,"msg":null}.
    with pytest.raises(AuthError):
        GeWeClient(url, fresh_sims["gewe"].token).call(
            "set_callback",
            "/tools/setCallback",
            json_body={"token": "stale"},
            parse=GeWeClient(url)._parse_data,
        )


def test_gewe_send_all_kinds_returns_big_ids_as_exact_strings(gewe):
    sim, client = gewe
    device = login(sim, client)
    text = client.send_text(device, "wxid_cust0001", "您好")
    image = client.send_image(device, "wxid_cust0001", "http://files/a.jpg")
    file = client.send_file(device, "wxid_cust0001", "http://files/a.pdf", "a.pdf")
    link = client.send_link(
        device,
        "wxid_cust0001",
        title="新品",
        description="d",
        url="http://x",
        thumb_url="http://t.jpg",
    )
    voice = client.send_voice(device, "wxid_cust0001", "http://files/a.silk", 2540)
    assert text.new_msg_id == "7773749793478223190"  # > 2^53, exact digits preserved
    assert int(text.new_msg_id) > 2**53
    assert isinstance(text.msg_id, str) and text.msg_id == "1040356095"
    assert len({m.new_msg_id for m in (text, image, file, link, voice)}) == 5
    assert image.create_time == 0  # image/voice answers carry createTime 0, type null
    bodies = {r.path: r.json for r in sim.requests}
    assert bodies["/message/postImage"]["imgUrl"] == "http://files/a.jpg"
    assert bodies["/message/postFile"] == {
        "appId": device,
        "toWxid": "wxid_cust0001",
        "fileUrl": "http://files/a.pdf",
        "fileName": "a.pdf",
    }
    assert bodies["/message/postLink"]["desc"] == "d"
    assert bodies["/message/postVoice"]["voiceDuration"] == 2540


def test_gewe_group_text_with_mentions(gewe):
    sim, client = gewe
    device = login(sim, client)
    content = "@客户0001\u2005欢迎入群"
    client.send_text(device, "34000000000@chatroom", content, at=["wxid_cust0001", "wxid_b"])
    body = sim.requests_to("/message/postText")[-1].json
    assert body["ats"] == "wxid_cust0001,wxid_b"
    assert body["content"] == content


def test_gewe_send_while_offline_raises_account_offline_without_retry(gewe, records):
    sim, client = gewe
    device = login(sim, client)
    # checkOnline still says true, but sends fail (Gewechat #224).
    sim.set_offline(device, sends_only=True)
    assert client.is_online(device) is True
    with pytest.raises(AccountOffline, match="微信已离线"):
        client.send_text(device, "wxid_x", "hi")
    assert len(sim.requests_to("/message/postText")) == 1
    assert records[-1].error_class == "AccountOffline"


def test_gewe_contacts_brief_and_detail_are_batched(gewe):
    sim, client = gewe
    device = login(sim, client)
    sim.generate_contacts(friends=230, groups=3, members=6)
    contacts = client.list_contacts(device)
    assert len(contacts.friends) == 230 and len(contacts.chatrooms) == 3
    brief = client.get_contacts_brief(device, contacts.friends)
    assert [c.wxid for c in brief] == contacts.friends
    assert brief[5].nickname == "客户0005" and brief[5].avatar_url
    assert [len(r.json["wxids"]) for r in sim.requests_to("/contacts/getBriefInfo")] == [
        100,
        100,
        30,
    ]
    detail = client.get_contacts_detail(device, contacts.friends[:45])
    assert len(detail) == 45
    assert [len(r.json["wxids"]) for r in sim.requests_to("/contacts/getDetailInfo")] == [20, 20, 5]
    members = client.list_group_members(device, contacts.chatrooms[0])
    assert members[0].wxid == "wxid_sim_sales01"
    assert len(members) == 7 and members[1].nickname == "客户0000"


def test_gewe_friend_request_accept_and_labels(gewe, callback_sink):
    sim, client = gewe
    device = login(sim, client)
    client.set_callback(callback_sink.url)
    event = sim.emit_friend_request(from_wxid="wxid_newcust", nickname="新客户")
    xml = event["Data"]["Content"]["string"]
    v3 = xml.split('encryptusername="')[1].split('"')[0]
    v4 = xml.split('ticket="')[1].split('"')[0]
    client.accept_friend(device, v3=v3, v4=v4, scene=6)
    body = sim.requests_to("/contacts/addContacts")[-1].json
    assert body["option"] == 3 and body["v3"] == v3 and body["v4"] == v4
    assert "wxid_newcust" in client.list_contacts(device).friends

    vip = client.add_label(device, "VIP")
    assert client.add_label(device, "VIP") == vip  # existing name returns the same id
    client.add_label(device, "潜在客户")
    assert [label.name for label in client.list_labels(device)] == ["VIP", "潜在客户"]


def test_gewe_moments_only_on_hosted(gewe, fresh_sims):
    sim, client = gewe
    device = login(sim, client)
    assert client.supports_moments
    moment = client.post_moment_text(device, "新品上市")
    assert int(moment.moment_id) > 2**53
    page = client.list_moments(device)
    assert [m.moment_id for m in page.items] == [moment.moment_id]
    assert sim.requests_to("/sns/sendTextSns")[0].json["content"] == "新品上市"

    open_source = GeWeClient(fresh_sims.urls["gewe"], sim.token)
    with pytest.raises(NotSupported):
        open_source.post_moment_text(device, "x")
    sim.hosted = False
    try:
        with pytest.raises(NotSupported):
            client.list_moments(device)  # the server has no /sns route: 404
    finally:
        sim.hosted = True


def test_gewe_base_url_prefix_self_hosted_and_hosted(gewe, fresh_sims):
    sim, _ = gewe
    self_hosted = GeWeClient(sim.base_url + "/v2/api", sim.token)
    assert self_hosted.is_online("wx_none") is False
    assert sim.requests[-1].path == "/login/checkOnline"


def test_gewe_set_callback_sends_ping(gewe, callback_sink):
    sim, client = gewe
    client.set_callback(callback_sink.url)
    assert callback_sink.wait_for(1)[0] == {"testMsg": "验证回调地址是否可用", "token": sim.token}
    assert sim.callback_url == callback_sink.url


# -- retries, backoff, timeouts (exercised through GeWe) ------------------------------------


def test_retryable_5xx_is_retried_with_exponential_backoff(gewe, records, sleeps):
    sim, client = gewe
    sim.add_fault("error", "/login/checkOnline", status=503, times=2)
    assert client.is_online("wx_none") is False
    assert [r.http_status for r in records] == [503, 503, 200]
    assert [r.attempt for r in records] == [1, 2, 3]
    assert [r.error_class for r in records] == ["Unavailable", "Unavailable", None]
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 0.5 * 1.25 and 1.0 <= sleeps[1] <= 1.0 * 1.25


def test_gives_up_after_three_attempts(gewe, records, sleeps):
    sim, client = gewe
    sim.add_fault("error", "/login/checkOnline", status=502)
    with pytest.raises(Unavailable) as info:
        client.is_online("wx_none")
    assert info.value.status == 502
    assert len(records) == 3 and len(sleeps) == 2
    assert len(sim.requests_to("/login/checkOnline")) == 3


def test_non_retryable_error_is_not_retried(gewe, records, sleeps):
    sim, client = gewe
    sim.add_fault("auth", "/login/checkOnline")
    with pytest.raises(AuthError):
        client.is_online("wx_none")
    assert len(records) == 1 and sleeps == []


def test_sends_are_not_retried_after_a_5xx(gewe, records, sleeps):
    sim, client = gewe
    device = login(sim, client)
    sim.add_fault("error", "/message/postText", status=502, times=1)
    with pytest.raises(Unavailable):
        client.send_text(device, "wxid_x", "hi")
    # The platform may have sent it already: a blind retry could double-send.
    assert len(sim.requests_to("/message/postText")) == 1 and sleeps == []


def test_sends_are_retried_when_the_connection_was_refused(records, sleeps):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = GeWeClient(
        f"http://127.0.0.1:{port}/v2/api", "t", recorder=records.append, sleep=sleeps.append
    )
    with pytest.raises(Unavailable) as info:
        client.send_text("wx_a", "wxid_x", "hi")
    assert info.value.before_send
    assert len(records) == 3 and all(r.http_status is None for r in records)


def test_429_honours_retry_after_and_caps_it(gewe, records, sleeps):
    sim, client = gewe
    sim.add_fault("rate_limit", "/login/checkOnline", retry_after=3, times=1)
    assert client.is_online("wx_none") is False
    assert 3.0 <= sleeps[0] <= 3.75
    assert records[0].http_status == 429 and records[0].error_class == "RateLimited"

    sleeps.clear()
    sim.add_fault("rate_limit", "/login/checkOnline", retry_after=600, times=1)
    client.is_online("wx_none")
    assert 30.0 <= sleeps[0] <= 37.5  # capped at RetryPolicy.max_retry_after


def test_rate_limited_send_is_retried(gewe, sleeps):
    sim, client = gewe
    device = login(sim, client)
    sim.add_fault("rate_limit", "/message/postText", retry_after=1, times=1)
    sent = client.send_text(device, "wxid_x", "hi")
    assert sent.msg_id and len(sim.requests_to("/message/postText")) == 2


def test_read_timeout_raises_request_timeout_after_retries(fresh_sims, records, sleeps):
    sim = fresh_sims["gewe"]
    sim.add_fault("hang", "/login/checkOnline", delay=2.0)
    client = GeWeClient(
        fresh_sims.urls["gewe"],
        sim.token,
        timeout=(1.0, 0.2),
        retry=RetryPolicy(max_attempts=2),
        recorder=records.append,
        sleep=sleeps.append,
    )
    started = time.monotonic()
    with pytest.raises(RequestTimeout):
        client.is_online("wx_none")
    assert time.monotonic() - started < 1.5
    assert [r.error_class for r in records] == ["RequestTimeout", "RequestTimeout"]
    assert all(r.http_status is None for r in records)


def test_recorder_failure_does_not_break_calls(fresh_sims):
    sim = fresh_sims["gewe"]

    def broken(record):
        raise RuntimeError("db down")

    client = GeWeClient(fresh_sims.urls["gewe"], sim.token, recorder=broken)
    assert client.is_online("wx_none") is False


def test_secrets_never_reach_logs_or_records(gewe, records, caplog):
    sim, client = gewe
    caplog.set_level("DEBUG", logger="apps.integrations.clients")
    sim.add_fault("error", "/login/checkOnline", status=503, times=1)
    client.is_online("wx_none")
    assert caplog.records, "the call path should log"
    assert sim.token not in caplog.text
    assert all(sim.token not in repr(r) for r in records)


# -- E云管家 ---------------------------------------------------------------------------------


@pytest.fixture
def ecloud(fresh_sims, records, sleeps):
    sim = fresh_sims["ecloud"]
    client = ECloudClient(fresh_sims.urls["ecloud"], recorder=records.append, sleep=sleeps.append)
    client.member_login(sim.account, sim.password)
    return sim, client


def ecloud_login(sim, client) -> tuple[str, str]:
    qr = client.get_login_qr()
    sim.confirm_login(qr.device_id)
    status = client.check_login(qr.device_id)
    assert status.state == "logged_in"
    return qr.device_id, status.wxid


def test_ecloud_member_login_and_auth_errors(fresh_sims):
    sim = fresh_sims["ecloud"]
    client = ECloudClient(fresh_sims.urls["ecloud"])
    with pytest.raises(AuthError, match="密码"):
        client.member_login(sim.account, "wrong")
    with pytest.raises(AuthError, match="Authorization"):
        client.is_online("w")
    assert client.member_login(sim.account, sim.password) == sim.authorization
    assert sim.requests[-1].header("Authorization") == ""  # login itself carries none
    assert client.is_online("w") is False
    assert sim.requests[-1].header("Authorization") == sim.authorization  # raw, no Bearer


def test_ecloud_login_flow_and_new_wid_per_login(ecloud):
    sim, client = ecloud
    sim.login_delay = 0.2
    qr = client.get_login_qr()
    assert qr.qr_data.startswith("http://weixin.qq.com/x/") and qr.device_id
    assert client.check_login(qr.device_id).state == "waiting"
    time.sleep(0.25)
    status = client.check_login(qr.device_id)
    assert status.state == "logged_in" and status.wxid == "wxid_sim_sales02"
    assert client.is_online(qr.device_id)

    again = client.dialog_login(qr.device_id, wxid=status.wxid)
    assert again.device_id != qr.device_id  # wId changes on every login
    assert client.is_online(again.device_id) and not client.is_online(qr.device_id)
    relogin = client.get_login_qr(wxid=status.wxid)
    assert sim.requests_to("/iPadLogin")[-1].json == {"wcId": status.wxid, "deviceType": "ipad"}
    assert relogin.device_id not in (qr.device_id, again.device_id)
    with pytest.raises(NotSupported):
        client.reconnect(again.device_id)


def test_ecloud_sends_and_offline(ecloud):
    sim, client = ecloud
    device, _ = ecloud_login(sim, client)
    text = client.send_text(device, "123@chatroom", "@张三 你好", at=["wxid_zs"])
    assert text.new_msg_id == "3166120021925175285" and int(text.new_msg_id) > 2**53
    client.send_image(device, "wxid_a", "http://f/a.png")
    client.send_file(device, "wxid_a", "http://f/a.pdf", "a.pdf")
    client.send_link(
        device, "wxid_a", title="t", description="d", url="http://u", thumb_url="http://t.jpg"
    )
    client.send_voice(device, "wxid_a", "http://f/a.silk", 3000)
    bodies = {r.path: r.json for r in sim.requests}
    assert bodies["/sendText"] == {
        "wId": device,
        "wcId": "123@chatroom",
        "content": "@张三 你好",
        "at": "wxid_zs",
    }
    assert bodies["/sendImage2"]["content"] == "http://f/a.png"
    assert bodies["/sendFile"]["path"] == "http://f/a.pdf"
    assert bodies["/sendUrl"]["description"] == "d"
    assert bodies["/sendVoice"]["length"] == 3000
    sim.set_offline(device, notify=False)
    assert client.is_online(device) is False
    assert client.offline_reason("wxid_sim_sales02") == "手机端退出登录"
    with pytest.raises(AccountOffline):
        client.send_text(device, "wxid_a", "hi")
    assert len(sim.requests_to("/sendText")) == 2


def test_ecloud_contacts_batched_with_random_gaps(ecloud, sleeps):
    sim, client = ecloud
    device, _ = ecloud_login(sim, client)
    sim.generate_contacts(friends=45, groups=2, members=3)
    contacts = client.list_contacts(device)
    assert [r.path for r in sim.requests[-2:]] == ["/initAddressList", "/getAddressList"]
    detail = client.get_contacts_detail(device, contacts.friends)
    assert [c.wxid for c in detail] == contacts.friends
    batches = [len(r.json["wcId"].split(",")) for r in sim.requests_to("/getContact")]
    assert batches == [20, 20, 5]
    assert len(sleeps) == 2 and all(0.3 <= s <= 0.8 for s in sleeps)
    members = client.list_group_members(device, contacts.chatrooms[0])
    assert [m.wxid for m in members][:2] == ["wxid_sim_sales02", "wxid_ecust0000"]


def test_ecloud_accept_friend_and_labels(ecloud, callback_sink):
    sim, client = ecloud
    device, _ = ecloud_login(sim, client)
    client.set_callback(callback_sink.url)
    event = sim.emit_friend_request(from_wxid="wxid_new")
    client.accept_friend(
        device, v3=event["data"]["v1"], v4=event["data"]["v2"], scene=event["data"]["scene"]
    )
    assert sim.accepted[-1] == {
        "wId": device,
        "v1": event["data"]["v1"],
        "v2": event["data"]["v2"],
        "type": 6,
    }
    label = client.add_label(device, "高意向")
    assert client.add_label(device, "高意向") == label
    assert client.list_labels(device) == [label]
    assert sim.requests_to("/setHttpCallbackUrl")[0].json == {
        "httpUrl": callback_sink.url,
        "type": 2,
    }
