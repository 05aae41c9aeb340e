"""The simulators themselves: wire formats, control endpoints, fault injection, webhooks."""

from __future__ import annotations

import json
import socket
import time

import pytest
import requests

from apps.integrations.clients.sse import iter_sse
from apps.integrations.simulators import gewe as gewe_sim
from apps.integrations.simulators.runner import start_simulators


def raw_frames(response: requests.Response) -> list[str]:
    text = response.content.decode("utf-8")
    return [frame for frame in text.split("\n\n") if frame]


# -- control endpoints ----------------------------------------------------------------------


def test_control_endpoints_over_http(fresh_sims):
    base = fresh_sims["openai"].base_url
    url = fresh_sims.urls["openai"] + "/chat/completions"
    headers = {"Authorization": "Bearer sk-sim-openai"}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}

    added = requests.post(
        f"{base}/__sim__/faults",
        json={"kind": "error", "status": 503, "path": "/chat/completions", "times": 1},
    ).json()
    assert added[0]["kind"] == "error" and added[0]["times"] == 1
    first = requests.post(url, json=body, headers=headers)
    assert first.status_code == 503 and first.json()["error"]["code"] == "server_error"
    assert requests.post(url, json=body, headers=headers).status_code == 200

    captured = requests.get(f"{base}/__sim__/requests").json()
    assert [r["path"] for r in captured] == ["/chat/completions", "/chat/completions"]
    assert captured[0]["json"] == body
    assert captured[0]["headers"]["authorization"] == "Bearer sk-sim-openai"

    bad = requests.post(f"{base}/__sim__/faults", json={"kind": "explode"})
    assert bad.status_code == 400 and "unknown fault kind" in bad.json()["error"]
    requests.post(f"{base}/__sim__/faults", json={"kind": "latency", "delay": 0.2})
    assert len(requests.get(f"{base}/__sim__/faults").json()) == 2
    requests.delete(f"{base}/__sim__/faults")
    assert requests.get(f"{base}/__sim__/faults").json() == []

    requests.post(f"{base}/__sim__/canned", json={"价格": "标准版 9800 元"})
    answer = requests.post(
        url,
        headers=headers,
        json={"model": "m", "messages": [{"role": "user", "content": "价格多少"}]},
    ).json()
    assert answer["choices"][0]["message"]["content"] == "标准版 9800 元"
    assert requests.post(f"{base}/__sim__/reset").json() == {"ok": True}
    assert requests.get(f"{base}/__sim__/requests").json() == []
    assert fresh_sims["openai"].canned == {}


def test_latency_and_times_limited_faults(fresh_sims):
    sim = fresh_sims["gewe"]
    url = fresh_sims.urls["gewe"] + "/login/checkOnline"
    headers = {"X-GEWE-TOKEN": sim.token}
    sim.add_fault("latency", "/login/checkOnline", delay=0.3, times=1)
    started = time.monotonic()
    requests.post(url, json={"appId": "x"}, headers=headers)
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    requests.post(url, json={"appId": "x"}, headers=headers)
    assert time.monotonic() - started < 0.2


def test_hang_fault_never_answers(fresh_sims):
    sim = fresh_sims["gewe"]
    sim.add_fault("hang", "/login/checkOnline", delay=1.0, times=1)
    with pytest.raises(requests.ReadTimeout):
        requests.post(
            fresh_sims.urls["gewe"] + "/login/checkOnline",
            json={},
            headers={"X-GEWE-TOKEN": sim.token},
            timeout=(1, 0.2),
        )


def test_runner_uses_given_ports_and_stops():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    handle = start_simulators("127.0.0.1", {"dify": port}, only=["dify", "fastgpt"])
    try:
        assert handle.urls["dify"] == f"http://127.0.0.1:{port}/v1"
        assert handle.urls["fastgpt"].endswith("/api")
        assert set(handle.servers) == {"dify", "fastgpt"}
        assert requests.get(f"http://127.0.0.1:{port}/__sim__/requests").json() == []
    finally:
        handle.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/__sim__/requests", timeout=1)


# -- GeWe wire format and webhooks ----------------------------------------------------------


def test_gewe_send_answer_carries_bare_64_bit_integers(fresh_sims):
    sim = fresh_sims["gewe"]
    url = fresh_sims.urls["gewe"]
    headers = {"X-GEWE-TOKEN": sim.token}
    app_id = requests.post(
        url + "/login/getLoginQrCode", json={"appId": ""}, headers=headers
    ).json()["data"]["appId"]
    sim.confirm_login(app_id)
    requests.post(url + "/login/checkLogin", json={"appId": app_id}, headers=headers)
    raw = requests.post(
        url + "/message/postText",
        headers=headers,
        json={"appId": app_id, "toWxid": "wxid_a", "content": "hi"},
    ).text
    assert '"newMsgId": 7773749793478223190' in raw  # a JSON number, as the platform sends
    assert json.loads(raw)["ret"] == 200
    assert float(json.loads(raw)["data"]["newMsgId"]) != 7773749793478223190  # JS would round


def test_gewe_token_errors_match_the_platform(fresh_sims):
    url = fresh_sims.urls["gewe"] + "/login/checkOnline"
    missing = requests.post(url, json={}).json()
    assert missing == {"ret": 500, "msg": "header:X-GEWE-TOKEN 不可为空", "data": None}
    wrong = requests.post(url, json={}, headers={"X-GEWE-TOKEN": "abc"}).json()
    assert wrong["msg"] == "HTTP HEADER: X-GEWE-TOKEN=abc 不可用或已过期"


def test_gewe_webhook_catalogue(fresh_sims, callback_sink):
    sim = fresh_sims["gewe"]
    sim.callback_url = callback_sink.url
    sim.emit_text(from_wxid="wxid_cust", text="你好")
    sim.emit_group_text(
        chatroom_id="123@chatroom",
        sender_wxid="wxid_s",
        text="@销售小王\u2005在吗",
        at_wxids=["wxid_sim_sales01"],
    )
    sim.emit_image(from_wxid="wxid_cust")
    sim.emit_voice(from_wxid="wxid_cust", length_ms=3100)
    sim.emit_file(from_wxid="wxid_cust", file_name="报价.pdf")
    sim.emit_link(from_wxid="wxid_cust", title="官网", url="https://example.com")
    sim.emit_system(chatroom_id="123@chatroom", text='"张三"修改群名为“VIP群”')
    sim.emit_friend_request(from_wxid="wxid_new", greeting="想了解产品")
    sim.emit_self_sent(to_wxid="wxid_cust", text="我是销售")
    sim.emit_offline()
    events = callback_sink.wait_for(10)
    assert len(events) == 10
    text, group, image, voice, file, link, system, friend, own, offline = events

    assert text["TypeName"] == "AddMsg" and text["Wxid"] == "wxid_sim_sales01"
    assert text["Data"]["FromUserName"] == {"string": "wxid_cust"}
    assert text["Data"]["Content"] == {"string": "你好"} and text["Data"]["MsgType"] == 1
    assert text["Data"]["NewMsgId"] > 2**53
    assert b'"NewMsgId": 7773749793478223' in callback_sink.raw[0]  # bare integer on the wire

    assert group["Data"]["FromUserName"]["string"] == "123@chatroom"
    assert group["Data"]["Content"]["string"] == "wxid_s:\n@销售小王\u2005在吗"
    assert "<atuserlist><![CDATA[,wxid_sim_sales01]]></atuserlist>" in group["Data"]["MsgSource"]
    assert group["Data"]["PushContent"].endswith("在群聊中@了你")

    assert image["Data"]["MsgType"] == 3 and "<img " in image["Data"]["Content"]["string"]
    assert image["Data"]["ImgBuf"]["buffer"]
    assert (
        voice["Data"]["MsgType"] == 34
        and 'voicelength="3100"' in voice["Data"]["Content"]["string"]
    )
    assert file["Data"]["MsgType"] == 49 and "<type>6</type>" in file["Data"]["Content"]["string"]
    assert "<type>5</type>" in link["Data"]["Content"]["string"]
    assert system["Data"]["MsgType"] == 10000
    assert (
        friend["Data"]["MsgType"] == 37 and friend["Data"]["FromUserName"]["string"] == "fmessage"
    )
    assert 'encryptusername="v3_' in friend["Data"]["Content"]["string"]
    assert own["Data"]["FromUserName"]["string"] == own["Wxid"]
    assert offline == {"TypeName": "Offline", "Appid": offline["Appid"], "Wxid": "wxid_sim_sales01"}


def test_gewe_duplicate_delivery_and_http_emit(fresh_sims, callback_sink):
    sim = fresh_sims["gewe"]
    sim.callback_url = callback_sink.url
    sim.emit_text(from_wxid="wxid_cust", text="重复", times=2)
    reply = requests.post(
        f"{sim.base_url}/__sim__/emit",
        json={"kind": "text", "from_wxid": "wxid_b", "text": "over http"},
    )
    assert reply.status_code == 200
    first, second, third = callback_sink.wait_for(3)
    assert first == second  # same event, delivered twice
    assert third["Data"]["Content"]["string"] == "over http"
    assert third["Data"]["NewMsgId"] != first["Data"]["NewMsgId"]
    assert [d["status"] for d in sim.deliveries] == [200, 200, 200]


def test_gewe_echoes_own_sends_when_enabled(fresh_sims, callback_sink):
    sim = fresh_sims["gewe"]
    sim.echo_sent = True
    headers = {"X-GEWE-TOKEN": sim.token}
    url = fresh_sims.urls["gewe"]
    requests.post(
        url + "/tools/setCallback",
        headers=headers,
        json={"token": sim.token, "callbackUrl": callback_sink.url},
    )
    app_id = requests.post(
        url + "/login/getLoginQrCode", json={"appId": ""}, headers=headers
    ).json()["data"]["appId"]
    sim.confirm_login(app_id)
    requests.post(url + "/login/checkLogin", json={"appId": app_id}, headers=headers)
    sent = requests.post(
        url + "/message/postText",
        headers=headers,
        json={"appId": app_id, "toWxid": "wxid_a", "content": "hi"},
    ).json()
    ping, echo = callback_sink.wait_for(2)
    assert ping["testMsg"] == "验证回调地址是否可用"
    assert echo["Data"]["NewMsgId"] == sent["data"]["newMsgId"]
    assert echo["Data"]["FromUserName"]["string"] == "wxid_sim_sales01"


def test_gewe_payload_builders_work_without_a_server():
    payload = gewe_sim.build_add_msg(
        app_id="wx_A",
        account_wxid="wxid_me",
        from_wxid="wxid_c",
        to_wxid="wxid_me",
        msg_type=1,
        content="hi",
        msg_id=1,
        new_msg_id=7773749793478223190,
        create_time=1705043418,
    )
    assert payload["Data"]["CreateTime"] == 1705043418
    assert gewe_sim.build_offline(app_id="wx_A", account_wxid="wxid_me")["TypeName"] == "Offline"
    mod = gewe_sim.build_mod_contacts(
        app_id="wx_A", account_wxid="wxid_me", wxid="wxid_x", nickname="n"
    )
    assert mod["Data"]["UserName"] == {"string": "wxid_x"}
    assert (
        gewe_sim.build_del_contacts(app_id="a", account_wxid="b", wxid="c")["Data"][
            "DeleteContactScen"
        ]
        == 0
    )


# -- E云 webhooks ---------------------------------------------------------------------------


def test_ecloud_webhook_shapes(fresh_sims, callback_sink):
    sim = fresh_sims["ecloud"]
    sim.callback_url = callback_sink.url
    sim.emit_text(from_wxid="wxid_cust", text="你好", times=2)
    sim.emit_group_text(chatroom_id="9@chatroom", sender_wxid="wxid_s", text="@销售小李 在吗")
    sim.emit_self_sent(to_wxid="wxid_cust", text="在的")
    sim.emit_friend_request(from_wxid="wxid_new")
    sim.emit_voice(from_wxid="wxid_cust")
    text, dup, group, own, friend, voice = callback_sink.wait_for(6)
    assert text == dup
    assert text["messageType"] == "60001" and text["account"] == "sim-developer"
    assert text["data"]["fromUser"] == "wxid_cust" and text["data"]["self"] is False
    assert text["data"]["newMsgId"] > 2**53
    assert group["messageType"] == "80001" and group["data"]["fromGroup"] == "9@chatroom"
    assert group["data"]["fromUser"] == "wxid_s" and group["data"]["content"] == "@销售小李 在吗"
    assert own["data"]["self"] is True and own["data"]["fromUser"] == own["wcId"]
    assert friend["messageType"] == "30001" and friend["data"]["v1"].startswith("v3_")
    assert voice["messageType"] == "60004" and voice["data"]["voiceLength"] == 2540


# -- AI wire formats ------------------------------------------------------------------------


def test_openai_stream_framing_and_include_usage(fresh_sims):
    url = fresh_sims.urls["openai"] + "/chat/completions"
    headers = {"Authorization": "Bearer sk-sim-openai"}
    body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    frames = raw_frames(requests.post(url, json=body, headers=headers))
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(f[len("data: ") :]) for f in frames[:-1]]
    assert all("usage" not in c for c in chunks)
    body["stream_options"] = {"include_usage": True}
    frames = raw_frames(requests.post(url, json=body, headers=headers))
    chunks = [json.loads(f[len("data: ") :]) for f in frames[:-1]]
    assert all(c["usage"] is None for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 8


def test_openai_and_dashscope_401_bodies(fresh_sims):
    for name in ("openai", "dashscope"):
        reply = requests.post(
            fresh_sims.urls[name] + "/chat/completions",
            json={},
            headers={"Authorization": "Bearer nope"},
        )
        assert reply.status_code == 401
        assert reply.json()["error"]["code"] == "invalid_api_key"
    assert "request_id" in reply.json()  # DashScope adds request_id and id


def test_dify_stream_has_bare_ping_frames_and_no_done(fresh_sims):
    url = fresh_sims.urls["dify"] + "/chat-messages"
    reply = requests.post(
        url,
        headers={"Authorization": "Bearer app-sim-dify"},
        json={"query": "hello there", "user": "u", "inputs": {}, "response_mode": "streaming"},
    )
    frames = raw_frames(reply)
    assert "event: ping" in frames  # an event line with no data line
    assert all(f.startswith("data: ") or f == "event: ping" for f in frames)
    assert "[DONE]" not in reply.text
    assert json.loads(frames[-1][len("data: ") :])["event"] == "message_end"


def test_dify_401_has_www_authenticate(fresh_sims):
    reply = requests.post(fresh_sims.urls["dify"] + "/chat-messages", json={})
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    assert reply.json() == {
        "code": "unauthorized",
        "message": "Access token is invalid",
        "status": 401,
    }


def test_fastgpt_stream_framing_with_and_without_detail(fresh_sims):
    url = fresh_sims.urls["fastgpt"] + "/v1/chat/completions"
    headers = {"Authorization": "Bearer fastgpt-sim-key"}
    body = {"stream": True, "messages": [{"role": "user", "content": "hi"}]}
    plain = raw_frames(requests.post(url, json=body, headers=headers))
    assert all(f.startswith("data: ") for f in plain) and plain[-1] == "data: [DONE]"
    detail = raw_frames(requests.post(url, json={**body, "detail": True}, headers=headers))
    assert all(f.startswith("event: ") for f in detail)
    assert detail[-2] == "event: answer\ndata: [DONE]"
    assert detail[-1].startswith("event: flowResponses\ndata: [")
    blocking = requests.post(url, json={"messages": body["messages"]}, headers=headers).json()
    assert blocking["usage"] == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 1}
    assert "responseData" not in blocking  # node usage only with detail=true


def test_fastgpt_errors_are_http_500(fresh_sims):
    url = fresh_sims.urls["fastgpt"] + "/v1/chat/completions"
    reply = requests.post(url, json={"messages": []}, headers={"Authorization": "Bearer x"})
    assert reply.status_code == 500
    assert reply.json() == {
        "code": 514,
        "statusText": "unAuthApiKey",
        "message": "Api Key 不合法",
        "data": None,
    }


# -- SSE parser against hostile chunking ----------------------------------------------------


def test_sse_parser_handles_split_frames_crlf_and_split_utf8():
    data = (
        'event: answer\r\ndata: {"t": "你好"}\r\n\r\n'
        ": comment\n\nevent: ping\n\ndata: a\ndata: b\n\n"
    )
    raw = data.encode("utf-8")
    for size in (1, 2, 3, 7, len(raw)):
        chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
        frames = list(iter_sse(chunks))
        assert [(f.event, f.data) for f in frames] == [
            ("answer", '{"t": "你好"}'),
            ("ping", None),
            (None, "a\nb"),
        ]


def test_sse_parser_drops_an_unterminated_last_frame():
    frames = list(iter_sse([b'data: one\n\ndata: {"trunc']))
    assert [f.data for f in frames] == ["one"]


def test_a_reset_removes_a_method_a_test_replaced_on_the_instance(simulators_clean):
    gewe = simulators_clean["gewe"]
    gewe.emit = lambda payload, times=1: payload  # a stand-in that posts nothing
    simulators_clean.reset()
    assert "emit" not in vars(gewe)
    assert gewe.emit.__func__ is type(gewe).emit
