"""The GeWe simulator server: login state machine, contacts, sending, labels, Moments, events."""

from __future__ import annotations

import base64
import itertools
import random
import time
import uuid as uuidlib
from typing import Any

from apps.integrations.simulators.core import (
    Fault,
    Reply,
    SimRequest,
    SimulatorServer,
    qr_png_data_uri,
)
from apps.integrations.simulators.gewe.control import GeWeControls
from apps.integrations.simulators.gewe.media import GeWeMediaMixin
from apps.integrations.simulators.gewe.payloads import (
    _FIRST_MSG_ID,
    _FIRST_NEW_MSG_ID,
    _FIRST_SNS_ID,
    _at_source,
    _group_prefix,
    appmsg_xml,
    build_add_msg,
    build_offline,
    build_ping,
    friend_request_xml,
    image_xml,
    voice_xml,
)

# -- simulator ------------------------------------------------------------------------------


class GeWeSimulator(GeWeMediaMixin, GeWeControls, SimulatorServer):
    """In-memory GeWe. ``login_delay``: seconds from QR creation until the phone confirms
    (scanned at half of it); ``qr_ttl``: QR lifetime; ``hosted``: enable ``/sns/*``."""

    name = "gewe"
    prefixes = ("/gewe/v2/api", "/v2/api")

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        hosted: bool = True,
        login_delay: float = 0.3,
        qr_ttl: float = 120.0,
        account_wxid: str = "wxid_sim_sales01",
        account_nickname: str = "销售小王",
        echo_sent: bool = False,
        **kwargs: Any,
    ) -> None:
        self.token = token or "9c1f4e2ab7d34f0c8e6b5a4d3c2b1a09"
        self.account_wxid = account_wxid
        self.account_nickname = account_nickname
        # Tunables a test may change; reset() restores them. Real GeWe echoes your own sends
        # as AddMsg callbacks; echo_sent is off by default to keep tests lean.
        self._config = {
            "hosted": hosted,
            "login_delay": login_delay,
            "qr_ttl": qr_ttl,
            "echo_sent": echo_sent,
        }
        super().__init__(host, port, **kwargs)
        routes = {
            "/tools/getTokenId": self._get_token,
            "/tools/setCallback": self._set_callback,
            "/login/deviceList": self._device_list,
            "/login/getLoginQrCode": self._get_qr,
            "/login/checkLogin": self._check_login,
            "/login/checkOnline": self._check_online,
            "/login/reconnection": self._reconnect,
            "/login/dialogLogin": self._dialog_login,
            "/login/logout": self._logout,
            "/message/postText": self._send(1),
            "/message/postImage": self._send(3),
            "/message/postFile": self._send(6),
            "/message/postLink": self._send(5),
            "/message/postVoice": self._send(34),
            "/contacts/fetchContactsList": self._contacts_list,
            "/contacts/fetchContactsListCache": self._contacts_list,
            "/contacts/getBriefInfo": self._info(100),
            "/contacts/getDetailInfo": self._info(20),
            "/contacts/addContacts": self._add_contacts,
            "/group/getChatroomMemberList": self._members,
            "/label/list": self._label_list,
            "/label/add": self._label_add,
            "/sns/sendTextSns": self._sns_send,
            "/sns/snsList": self._sns_list,
        }
        for path, handler in routes.items():
            self.route("POST", path, self._guard(path, handler))
        self.media_routes()  # media (issue 20): apps/integrations/simulators/gewe/media.py

    def reset_state(self) -> None:
        for name, value in self._config.items():
            setattr(self, name, value)
        self.callback_url: str | None = None
        self.devices: dict[str, dict] = {}
        self.friends: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self.labels: dict[int, str] = {}
        self.moments: list[dict] = []
        self.sent: list[dict] = []
        self.media_reset()
        self.contact_requests: list[dict] = []
        self.pending_friend_requests: list[dict] = []
        self._msg_ids = itertools.count(_FIRST_MSG_ID)
        self._new_msg_ids = itertools.count(_FIRST_NEW_MSG_ID, 7919)
        self._sns_ids = itertools.count(_FIRST_SNS_ID, 104729)

    def state(self) -> dict:
        with self._lock:
            return {
                "callback_url": self.callback_url,
                "devices": {k: {**v} for k, v in self.devices.items()},
                "friends": len(self.friends),
                "groups": len(self.groups),
                "sent": list(self.sent),
                "moments": len(self.moments),
            }

    # -- envelope helpers ----------------------------------------------------------------

    @staticmethod
    def ok(data: Any = None, msg: str = "操作成功") -> Reply:
        body = {"ret": 200, "msg": msg}
        if data is not None:
            body["data"] = data
        return Reply(200, body)

    @staticmethod
    def fail(msg: str | None, data: Any = None, ret: int = 500) -> Reply:
        return Reply(200, {"ret": ret, "msg": msg, "data": data})

    def fault_reply(self, request: SimRequest, fault: Fault) -> Reply | None:
        if fault.body is not None:
            return Reply(fault.status or 200, fault.body)
        if fault.kind == "auth":
            token = request.header("X-GEWE-TOKEN")
            return self.fail(f"HTTP HEADER: X-GEWE-TOKEN={token} 不可用或已过期")
        if fault.kind == "rate_limit":
            # GeWe documents no throttling answer; a proxy 429 is the realistic case.
            headers = {"Retry-After": str(int(fault.retry_after or 1))}
            return Reply(429, "<html>429 Too Many Requests</html>", headers, "text/html")
        if fault.status and fault.status >= 400:
            return Reply(
                fault.status, f"<html>{fault.status} error</html>", content_type="text/html"
            )
        return self.fail(fault.message or "操作失败")

    def _guard(self, path: str, handler: Any) -> Any:
        def run(request: SimRequest) -> Reply:
            if path != "/tools/getTokenId":
                token = request.header("X-GEWE-TOKEN")
                if not token:
                    return self.fail("header:X-GEWE-TOKEN 不可为空")
                if token != self.token:
                    return self.fail(f"HTTP HEADER: X-GEWE-TOKEN={token} 不可用或已过期")
            if path.startswith("/sns/") and not self.hosted:
                return Reply(
                    404,
                    {
                        "timestamp": int(time.time() * 1000),
                        "status": 404,
                        "error": "Not Found",
                        "path": "/v2/api" + path,
                    },
                )
            body = request.json if isinstance(request.json, dict) else {}
            with self._lock:
                return handler(body)

        return run

    def _device(self, body: dict) -> dict | None:
        return self.devices.get(body.get("appId") or "")

    # -- login ---------------------------------------------------------------------------

    def _get_token(self, body: dict) -> Reply:
        return self.ok(self.token, "执行成功")

    def _set_callback(self, body: dict) -> Reply:
        if body.get("token") != self.token:
            return self.fail(None)  # what a stale token yields (Gewechat #189)
        self.callback_url = body.get("callbackUrl")
        self.post_json_later(self.callback_url, build_ping(self.token))
        return self.ok()

    def _device_list(self, body: dict) -> Reply:
        return self.ok(list(self.devices))

    def _new_qr(self, device: dict) -> dict:
        device["uuid"] = "w" + uuidlib.uuid4().hex[:22]
        device["qr_at"] = time.monotonic()
        device["confirmed_at"] = None
        return {
            "appId": device["app_id"],
            "uuid": device["uuid"],
            "qrData": f"http://weixin.qq.com/x/{device['uuid']}",
            "qrImgBase64": qr_png_data_uri(f"http://weixin.qq.com/x/{device['uuid']}"),
        }

    def _get_qr(self, body: dict) -> Reply:
        app_id = body.get("appId") or ""
        if app_id:
            device = self.devices.get(app_id)
            if device is None:
                return self.fail("获取二维码失败", {"code": "-1", "msg": f"[{app_id}]设备不存在"})
            if device["online"]:
                return self.fail("微信已登录，请勿重复登录。")
        else:
            app_id = "wx_" + "".join(random.choices("abcdefghijklmnopqrstuvwxyz0123456789", k=21))
            device = {"app_id": app_id, "online": False, "wxid": None, "send_fails": False}
            self.devices[app_id] = device
        return self.ok(self._new_qr(device))

    def confirm_login(self, app_id: str) -> None:
        """Make the phone confirm the pending login now (ignores ``login_delay``)."""
        with self._lock:
            self.devices[app_id]["confirmed_at"] = time.monotonic()

    def _login_progress(self, device: dict) -> dict:
        elapsed = time.monotonic() - (device.get("qr_at") or time.monotonic())
        expired_time = max(0, int(self.qr_ttl - elapsed))
        confirmed = device.get("confirmed_at") is not None or elapsed >= self.login_delay
        scanned = confirmed or elapsed >= self.login_delay / 2
        data = {
            "uuid": device.get("uuid"),
            "headImgUrl": None,
            "nickName": None,
            "expiredTime": expired_time,
            "status": 0,
            "loginInfo": None,
        }
        if device["online"] or (confirmed and expired_time > 0):
            device["online"] = True
            device["wxid"] = device.get("wxid") or self.wxid_for_new_login()
            data.update(
                status=2,
                nickName=self.account_nickname,
                headImgUrl="https://wx.qlogo.cn/mmhead/sim/0",
                loginInfo={
                    "uin": 1234567890,
                    "wxid": device["wxid"],
                    "nickName": self.account_nickname,
                    "mobile": "13800000000",
                    "alias": "sales01",
                },
            )
        elif scanned and expired_time > 0:
            data.update(status=1, nickName=self.account_nickname)
        return data

    def _check_login(self, body: dict) -> Reply:
        device = self._device(body)
        if device is None:
            return self.fail("设备不存在")
        return self.ok(self._login_progress(device))

    def _check_online(self, body: dict) -> Reply:
        device = self._device(body)
        return self.ok(bool(device and device["online"]))

    def _reconnect(self, body: dict) -> Reply:
        device = self._device(body)
        if device is None or not device.get("wxid"):
            return self.fail("断线重连异常 e=设备未登录")
        if device["online"]:
            return self.fail("断线重连异常 e=当前账号状态正常，无需重连")
        device["online"] = True
        return self.ok(self._login_progress(device))

    def _dialog_login(self, body: dict) -> Reply:
        device = self._device(body)
        if device is None or not device.get("wxid"):
            return self.fail("弹框登录失败，请使用扫码登录")
        qr = self._new_qr(device)
        return self.ok({"appId": device["app_id"], "uuid": qr["uuid"]})

    def _logout(self, body: dict) -> Reply:
        device = self._device(body)
        if device is None:
            return self.fail("设备不存在")
        device["online"] = False
        return self.ok()

    def set_offline(self, app_id: str, *, notify: bool = True, sends_only: bool = False) -> None:
        """Drop the account. ``sends_only``: checkOnline stays true but sends fail (#224)."""
        with self._lock:
            device = self.devices[app_id]
            if sends_only:
                device["send_fails"] = True
            else:
                device["online"] = False
        if notify and self.callback_url and not sends_only:
            self.post_json(
                self.callback_url, build_offline(app_id=app_id, account_wxid=self.account_wxid)
            )

    # -- sending -------------------------------------------------------------------------

    def _send(self, msg_type: int) -> Any:
        def handler(body: dict) -> Reply:
            device = self._device(body)
            if device is None:
                return self.fail("设备不存在")
            if not device["online"] or device.get("send_fails"):
                return self.fail("发送消息失败-微信已离线(-1)")
            if not body.get("toWxid"):
                return self.fail("toWxid不能为空")
            msg_id, new_msg_id = next(self._msg_ids), next(self._new_msg_ids)
            created = int(time.time())
            record = {
                "type": msg_type,
                "app_id": device["app_id"],
                "to": body["toWxid"],
                "body": body,
                "msgId": msg_id,
                "newMsgId": new_msg_id,
            }
            self.sent.append(record)
            data: dict[str, Any] = {
                "toWxid": body["toWxid"],
                "createTime": created,
                "msgId": msg_id,
                "newMsgId": new_msg_id,
                "type": msg_type,
            }
            if msg_type in (3, 34):
                data.update(createTime=0, type=None)  # as the real image/voice answers
            if msg_type == 3:
                data.update(
                    aesKey="a1b2c3",
                    fileId="3052020100",
                    length=40960,
                    width=800,
                    height=600,
                    md5="0f5b7a3b6c1d2e3f4a5b6c7d8e9f0a1b",
                )
            if self.echo_sent and self.callback_url and msg_type == 1:
                payload = build_add_msg(
                    app_id=device["app_id"],
                    account_wxid=self.account_wxid,
                    from_wxid=self.account_wxid,
                    to_wxid=body["toWxid"],
                    msg_type=1,
                    content=body.get("content", ""),
                    msg_id=msg_id,
                    new_msg_id=new_msg_id,
                )
                self.post_json_later(self.callback_url, payload)
            return self.ok(data)

        return handler

    # -- contacts ------------------------------------------------------------------------

    def generate_contacts(self, friends: int = 10, groups: int = 2, members: int = 5) -> None:
        """Fill the address book with ``friends`` customers and ``groups`` groups of
        ``members`` members each (members are drawn from the friends plus strangers)."""
        with self._lock:
            for i in range(friends):
                wxid = f"wxid_cust{i:04d}"
                self.friends[wxid] = {
                    "userName": wxid,
                    "nickName": f"客户{i:04d}",
                    "remark": "",
                    "alias": "",
                    "sex": 1 + i % 2,
                    "signature": "",
                    "country": "CN",
                    "province": "Guangdong",
                    "city": "Shenzhen",
                    "bigHeadImgUrl": f"https://wx.qlogo.cn/{wxid}/0",
                    "smallHeadImgUrl": f"https://wx.qlogo.cn/{wxid}/132",
                    "labelList": "",
                    "phoneNumList": None,
                }
            for g in range(groups):
                room = f"{34000000000 + g}@chatroom"
                member_ids = [
                    f"wxid_cust{(g + j) % max(friends, 1):04d}"
                    if friends
                    else f"wxid_stranger{g}_{j}"
                    for j in range(members)
                ]
                self.groups[room] = {
                    "nickName": f"客户群{g}",
                    "owner": self.account_wxid,
                    "members": [self.account_wxid, *dict.fromkeys(member_ids)],
                }

    def _contacts_list(self, body: dict) -> Reply:
        return self.ok(
            {
                "friends": list(self.friends),
                "chatrooms": list(self.groups),
                "ghs": ["gh_7aac992b0363"],
            }
        )

    def _info(self, limit: int) -> Any:
        def handler(body: dict) -> Reply:
            wxids = body.get("wxids") or []
            if len(wxids) > limit:
                return self.fail(f"wxids数量不能超过{limit}")
            result = []
            for wxid in wxids:
                if wxid in self.friends:
                    result.append(self.friends[wxid])
                elif wxid in self.groups:
                    result.append({"userName": wxid, "nickName": self.groups[wxid]["nickName"]})
            return self.ok(result)

        return handler

    def _members(self, body: dict) -> Reply:
        group = self.groups.get(body.get("chatroomId") or "")
        if group is None:
            return self.fail("获取群成员列表失败")
        members = [
            {
                "wxid": w,
                "nickName": self.friends.get(w, {}).get("nickName", w),
                "displayName": "",
                "inviterUserName": self.account_wxid,
                "memberFlag": 0,
                "bigHeadImgUrl": "",
                "smallHeadImgUrl": "",
            }
            for w in group["members"]
        ]
        return self.ok({"memberList": members, "chatroomOwner": group["owner"], "adminWxid": None})

    def _add_contacts(self, body: dict) -> Reply:
        self.contact_requests.append(body)
        if body.get("option") == 3:
            for request in self.pending_friend_requests:
                if request["v3"] == body.get("v3"):
                    wxid = request["wxid"]
                    self.friends[wxid] = {
                        "userName": wxid,
                        "nickName": request["nickname"],
                        "remark": "",
                        "labelList": "",
                    }
        return self.ok()

    def _label_list(self, body: dict) -> Reply:
        return self.ok(
            {"labelList": [{"labelName": n, "labelId": i} for i, n in self.labels.items()]}
        )

    def _label_add(self, body: dict) -> Reply:
        name = body.get("labelName") or ""
        for label_id, existing in self.labels.items():
            if existing == name:
                return self.ok({"labelName": name, "labelId": label_id})
        label_id = len(self.labels) + 1
        self.labels[label_id] = name
        return self.ok({"labelName": name, "labelId": label_id})

    # -- moments -------------------------------------------------------------------------

    def _sns_send(self, body: dict) -> Reply:
        device = self._device(body)
        if device is None or not device["online"]:
            return self.fail("发送朋友圈失败-微信已离线(-1)")
        item = {
            "id": next(self._sns_ids),
            "userName": self.account_wxid,
            "nickName": self.account_nickname,
            "createTime": int(time.time()),
            "snsXml": f"<TimelineObject><contentDesc>{body.get('content', '')}"
            "</contentDesc></TimelineObject>",
            "likeList": [],
            "commentList": [],
        }
        self.moments.insert(0, item)
        return self.ok({k: item[k] for k in ("id", "userName", "nickName", "createTime")})

    def _sns_list(self, body: dict) -> Reply:
        max_id = int(body.get("maxId") or 0)
        items = [m for m in self.moments if not max_id or m["id"] < max_id][:10]
        return self.ok(
            {
                "firstPageMd5": "a1b2c3d4",
                "maxId": items[-1]["id"] if items else 0,
                "snsCount": len(items),
                "snsList": items,
            }
        )

    # -- webhook emitters ----------------------------------------------------------------

    def _account(self, to_account: str | None) -> dict:
        with self._lock:
            for device in self.devices.values():
                if to_account in (None, device["app_id"], device.get("wxid")) and (
                    to_account is not None or device["online"]
                ):
                    return device
        if to_account is None:
            return {"app_id": "wx_simulated_device_0001", "wxid": self.account_wxid}
        raise KeyError(f"unknown account {to_account}")

    def emit(self, payload: dict, *, times: int = 1) -> dict:
        """POST ``payload`` to the callback URL ``times`` times (times=2: a duplicate)."""
        if not self.callback_url:
            raise RuntimeError("no callback URL set (call /tools/setCallback first)")
        for _ in range(times):
            self.post_json(self.callback_url, payload)
        return payload

    def _msg(self, to_account: str | None, **kwargs: Any) -> dict:
        device = self._account(to_account)
        kwargs.setdefault("to_wxid", device.get("wxid") or self.account_wxid)
        with self._lock:
            ids = {"msg_id": next(self._msg_ids), "new_msg_id": next(self._new_msg_ids)}
        return build_add_msg(
            app_id=device["app_id"],
            account_wxid=device.get("wxid") or self.account_wxid,
            **ids,
            **kwargs,
        )

    def build_text(self, *, from_wxid: str, text: str, to_account: str | None = None) -> dict:
        return self._msg(to_account, from_wxid=from_wxid, msg_type=1, content=text)

    def build_group_text(
        self,
        *,
        chatroom_id: str,
        sender_wxid: str,
        text: str,
        at_wxids: list[str] | tuple[str, ...] = (),
        to_account: str | None = None,
    ) -> dict:
        device = self._account(to_account)
        me = device.get("wxid") or self.account_wxid
        push = f"{sender_wxid}在群聊中@了你" if me in at_wxids else f"{sender_wxid} : {text}"
        return self._msg(
            to_account,
            from_wxid=chatroom_id,
            msg_type=1,
            content=_group_prefix(sender_wxid, text),
            msg_source=_at_source(list(at_wxids)),
            push_content=push,
        )

    def build_self_sent(self, *, to_wxid: str, text: str, to_account: str | None = None) -> dict:
        device = self._account(to_account)
        me = device.get("wxid") or self.account_wxid
        return self._msg(to_account, from_wxid=me, to_wxid=to_wxid, msg_type=1, content=text)

    def emit_text(
        self, *, from_wxid: str, text: str, to_account: str | None = None, times: int = 1
    ) -> dict:
        return self.emit(
            self.build_text(from_wxid=from_wxid, text=text, to_account=to_account), times=times
        )

    def emit_group_text(
        self,
        *,
        chatroom_id: str,
        sender_wxid: str,
        text: str,
        at_wxids: list[str] | tuple[str, ...] = (),
        to_account: str | None = None,
        times: int = 1,
    ) -> dict:
        return self.emit(
            self.build_group_text(
                chatroom_id=chatroom_id,
                sender_wxid=sender_wxid,
                text=text,
                at_wxids=at_wxids,
                to_account=to_account,
            ),
            times=times,
        )

    def emit_self_sent(self, *, to_wxid: str, text: str, to_account: str | None = None) -> dict:
        return self.emit(self.build_self_sent(to_wxid=to_wxid, text=text, to_account=to_account))

    def emit_image(
        self, *, from_wxid: str, to_account: str | None = None, group_sender: str | None = None
    ) -> dict:
        thumb = base64.b64encode(b"\xff\xd8\xff\xe0simulated-thumbnail").decode()
        return self.emit(
            self._msg(
                to_account,
                from_wxid=from_wxid,
                msg_type=3,
                content=_group_prefix(group_sender, image_xml()),
                img_buf=thumb,
            )
        )

    def emit_voice(
        self, *, from_wxid: str, length_ms: int = 2540, to_account: str | None = None
    ) -> dict:
        return self.emit(
            self._msg(to_account, from_wxid=from_wxid, msg_type=34, content=voice_xml(length_ms))
        )

    def emit_file(
        self,
        *,
        from_wxid: str,
        file_name: str = "报价单.pdf",
        size: int = 102400,
        to_account: str | None = None,
    ) -> dict:
        ext = file_name.rsplit(".", 1)[-1]
        xml = appmsg_xml(6, file_name, file_ext=ext, total_len=size)
        return self.emit(self._msg(to_account, from_wxid=from_wxid, msg_type=49, content=xml))

    def emit_link(
        self,
        *,
        from_wxid: str,
        title: str,
        url: str,
        description: str = "",
        to_account: str | None = None,
    ) -> dict:
        xml = appmsg_xml(5, title, des=description, url=url)
        return self.emit(self._msg(to_account, from_wxid=from_wxid, msg_type=49, content=xml))

    def emit_system(self, *, chatroom_id: str, text: str, to_account: str | None = None) -> dict:
        return self.emit(self._msg(to_account, from_wxid=chatroom_id, msg_type=10000, content=text))

    def emit_friend_request(
        self,
        *,
        from_wxid: str,
        nickname: str = "新客户",
        greeting: str = "你好，我想咨询产品",
        scene: int = 6,
        to_account: str | None = None,
    ) -> dict:
        v3 = f"v3_{uuidlib.uuid4().hex}@stranger"
        v4 = f"v4_{uuidlib.uuid4().hex}@stranger"
        with self._lock:
            self.pending_friend_requests.append(
                {"wxid": from_wxid, "nickname": nickname, "v3": v3, "v4": v4}
            )
        xml = friend_request_xml(
            from_wxid=from_wxid, nickname=nickname, v3=v3, v4=v4, scene=scene, content=greeting
        )
        return self.emit(self._msg(to_account, from_wxid="fmessage", msg_type=37, content=xml))

    def emit_offline(self, *, to_account: str | None = None) -> dict:
        device = self._account(to_account)
        return self.emit(
            build_offline(
                app_id=device["app_id"], account_wxid=device.get("wxid") or self.account_wxid
            )
        )
