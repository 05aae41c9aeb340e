"""The simulators' control endpoints answer bad input with a 4xx and a clear JSON message (never
a traceback, a KeyError or an empty reply), and their QR login works like the real one."""

from __future__ import annotations

import time

import pytest
import requests

from apps.integrations.simulators.ecloud import ECloudSimulator
from apps.integrations.simulators.gewe import GeWeSimulator


@pytest.fixture(scope="module")
def sims():
    gewe = GeWeSimulator(token="tok").start()
    ecloud = ECloudSimulator(authorization="auth").start()
    yield {"gewe": gewe, "ecloud": ecloud}
    gewe.stop()
    ecloud.stop()


@pytest.fixture
def sim(request, sims):
    server = sims[request.param]
    server.reset()
    return server


def _post(server, action, body=None, raw=None):
    url = f"{server.base_url}/__sim__/{action}"
    if raw is not None:
        return requests.post(url, data=raw, headers={"Content-Type": "application/json"}, timeout=5)
    return requests.post(url, json=body, timeout=5)


def _error(response, status=400) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    data = response.json()
    assert set(data) == {"error"} and data["error"], data
    assert "Traceback" not in data["error"]
    return data["error"]


BOTH = pytest.mark.parametrize("sim", ["gewe", "ecloud"], indirect=True)


@BOTH
@pytest.mark.parametrize(
    ("body", "raw", "expected"),
    [
        (None, None, "JSON object"),
        (None, b"{not json", "not valid JSON"),
        (["text"], None, "JSON object"),
        ({}, None, "'kind' is required"),
        ({"kind": "explode"}, None, "unknown kind"),
        ({"kind": "text"}, None, "missing field(s) ['from_wxid', 'text']"),
        ({"kind": "text", "from_wxid": "wxid_a"}, None, "missing field(s) ['text']"),
        ({"kind": "text", "from_wxid": "wxid_a", "text": 5}, None, "'text' must be a string"),
        (
            {"kind": "text", "from_wxid": "wxid_a", "text": "hi", "colour": "red"},
            None,
            "unknown field(s) ['colour']",
        ),
        ({"kind": "text", "from_wxid": "a", "text": "hi", "times": "2"}, None, "integer"),
    ],
)
def test_emit_rejects_bad_bodies_with_400_naming_the_problem(sim, body, raw, expected):
    sim.callback_url = "http://127.0.0.1:9/hook"  # so only the body can be wrong
    message = _error(_post(sim, "emit", body, raw))
    assert expected in message
    assert sim.deliveries == []


@BOTH
def test_emit_lists_the_kinds_it_knows(sim):
    message = _error(_post(sim, "emit", {"kind": "explode"}))
    assert "'text'" in message and "'group_text'" in message


@BOTH
def test_emit_without_a_callback_url_says_so_with_409(sim):
    message = _error(_post(sim, "emit", {"kind": "text", "from_wxid": "a", "text": "hi"}), 409)
    assert "no callback URL" in message


@BOTH
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (None, "send a fault object"),
        ({}, "'kind' is required"),
        ({"kind": "explode"}, "unknown fault kind"),
        ({"kind": "error", "statuss": 500}, "unknown field(s) ['statuss']"),
        ({"kind": "error", "status": "500"}, "'status' must be int"),
        ({"kind": "latency", "delay": "slow"}, "'delay' must be int or float"),
        ({"kind": "error", "times": True}, "'times' must be int"),
        ([{"kind": "error"}, "oops"], "must be a JSON object"),
    ],
)
def test_faults_reject_bad_bodies_with_400_and_add_nothing(sim, body, expected):
    message = _error(_post(sim, "faults", body))
    assert expected in message
    assert requests.get(f"{sim.base_url}/__sim__/faults", timeout=5).json() == []


@BOTH
def test_valid_faults_are_still_added(sim):
    response = _post(sim, "faults", [{"kind": "error", "status": 500, "times": 1}])
    assert response.status_code == 200 and response.json()[0]["status"] == 500


@pytest.mark.parametrize(("sim", "field"), [("gewe", "appId"), ("ecloud", "wId")], indirect=["sim"])
def test_confirm_needs_a_known_login(sim, field):
    assert f"'{field}' is required" in _error(_post(sim, "confirm", {}))
    assert f"'{field}' is required" in _error(_post(sim, "confirm", {field: 7}))
    assert "start a login first" in _error(_post(sim, "confirm", {field: "nope"}), 404)


@BOTH
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"friends": 3}, "list"),
        ({"contacts": 1}, "unknown field(s) ['contacts']"),
    ],
)
def test_devices_and_contacts_reject_bad_bodies(sim, body, expected):
    action = "devices" if "friends" in body else "contacts"
    assert expected in _error(_post(sim, action, body))


def _gewe(server, path, body):
    return requests.post(
        f"{server.base_url}/gewe/v2/api{path}",
        json=body,
        headers={"X-GEWE-TOKEN": "tok"},
        timeout=5,
    ).json()


@pytest.mark.parametrize("sim", ["gewe"], indirect=True)
def test_qr_login_shows_a_real_qr_image_and_confirms_itself(sim):
    import base64

    sim.login_delay = 0.6
    qr = _gewe(sim, "/login/getLoginQrCode", {"appId": ""})["data"]
    prefix = "data:image/png;base64,"
    assert qr["qrImgBase64"].startswith(prefix)
    png = base64.b64decode(qr["qrImgBase64"][len(prefix) :])
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 200
    status = _gewe(sim, "/login/checkLogin", {"appId": qr["appId"], "uuid": qr["uuid"]})["data"]
    assert status["status"] == 0  # nobody has scanned yet
    time.sleep(0.7)
    status = _gewe(sim, "/login/checkLogin", {"appId": qr["appId"], "uuid": qr["uuid"]})["data"]
    assert status["status"] == 2 and status["loginInfo"]["wxid"] == sim.account_wxid


@pytest.mark.parametrize("sim", ["gewe"], indirect=True)
def test_registered_devices_send_and_a_second_login_is_a_second_wechat(sim):
    response = _post(
        sim,
        "devices",
        {
            "appId": "wx_demo",
            "wxid": sim.account_wxid,
            "nickname": "销售小王",
            "friends": [{"wxid": "wxid_c1", "nickname": "杨帆"}],
            "groups": [{"id": "1@chatroom", "name": "客户群", "members": ["wxid_c1"]}],
        },
    )
    assert response.status_code == 200 and response.json()["online"] is True
    sent = _gewe(
        sim, "/message/postText", {"appId": "wx_demo", "toWxid": "wxid_c1", "content": "hi"}
    )
    assert sent["ret"] == 200
    assert sim.friends["wxid_c1"]["nickName"] == "杨帆" and "1@chatroom" in sim.groups
    sim.login_delay = 0
    qr = _gewe(sim, "/login/getLoginQrCode", {"appId": ""})["data"]
    info = _gewe(sim, "/login/checkLogin", {"appId": qr["appId"], "uuid": qr["uuid"]})["data"]
    assert info["loginInfo"]["wxid"] == f"{sim.account_wxid}_2"


@BOTH
def test_emit_posts_to_the_callback_when_the_body_is_right(sim):
    sim.callback_url = "http://127.0.0.1:9/hook"  # nothing listens: the delivery records it
    response = _post(sim, "emit", {"kind": "text", "from_wxid": "wxid_a", "text": "你好"})
    assert response.status_code == 200
    assert len(sim.deliveries) == 1 and sim.deliveries[0]["url"] == sim.callback_url


@pytest.mark.parametrize("name", ["openai", "fastgpt", "dify", "dashscope"])
def test_ai_simulators_reject_bad_faults_and_canned_answers(name):
    from apps.integrations.simulators.runner import start_simulators

    with start_simulators("127.0.0.1", only=[name]) as handle:
        server = handle[name]
        assert "'kind' is required" in _error(_post(server, "faults", {"delay": 1}))
        assert "send an object" in _error(_post(server, "canned", ["价格"]))
        assert _post(server, "canned", {"价格": "9800 元"}).status_code == 200
        assert "unknown control action" in _error(_post(server, "explode", {}), 404)
