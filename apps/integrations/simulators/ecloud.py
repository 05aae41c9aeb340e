"""E云管家 (wkteam) simulator: developer login, per-login ``wId``, string ``code`` envelope,
contacts, sending and type-2 ("optimized") callbacks with 6xxxx/8xxxx message types.

Where the protocol is undocumented (auth failure text, getContact/member/label shapes) the
simulator follows the inferred shapes the client expects; see the spec's [I]/[U] markers.
"""

from __future__ import annotations

import itertools
import time
import uuid as uuidlib
from typing import Any

from .core import (
    ControlError,
    Fault,
    Reply,
    SimRequest,
    SimulatorServer,
    call_with_body,
    json_object,
    require_str,
)
from .gewe import appmsg_xml, image_xml, voice_xml
from .media import FILES_PREFIX, SimMedia, decode_data

_FIRST_MSG_ID = 1052001123
_FIRST_NEW_MSG_ID = 3166120021925175285  # int64 above 2^53, as on the platform


def build_callback(*, account: str, message_type: str, wcid: str, data: dict) -> dict:
    """A type-2 callback body: ``{"account", "messageType", "wcId", "data"}``."""
    return {"account": account, "messageType": message_type, "wcId": wcid, "data": data}


class ECloudSimulator(SimulatorServer):
    """In-memory E云. ``login_delay``: seconds from iPadLogin until the phone confirms."""

    name = "ecloud"
    prefixes = ("",)

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        account: str = "sim-developer",
        password: str = "sim-password",  # noqa: S107 - the simulator's fake credential
        authorization: str | None = None,
        login_delay: float = 0.3,
        account_wxid: str = "wxid_sim_sales02",
        account_nickname: str = "销售小李",
        **kwargs: Any,
    ) -> None:
        self.account = account
        self.password = password
        self.authorization = authorization or "sim-ecloud-authorization-0123456789"
        self.account_wxid = account_wxid
        self.account_nickname = account_nickname
        self._config = {"login_delay": login_delay}
        super().__init__(host, port, **kwargs)
        routes = {
            "/member/login": self._member_login,
            "/setHttpCallbackUrl": self._set_callback,
            "/iPadLogin": self._ipad_login,
            "/getIPadLoginInfo": self._login_info,
            "/secondLogin": self._second_login,
            "/isOnline": self._is_online,
            "/offlineReason": self._offline_reason,
            "/queryLoginWx": self._query_login,
            "/sendText": self._send(1),
            # media (issue 20): the simulator fetches the URLs it is given, as E云 does.
            "/sendImage2": self._send(3, ("content",)),
            "/sendFile": self._send(6, ("path",)),
            "/sendVideo": self._send(43, ("path", "thumbPath")),
            "/sendUrl": self._send(5),
            "/getMsgImg": self._download,
            "/getMsgVoice": self._download,
            "/getMsgVideo": self._download,
            "/getMsgFile": self._download,
            "/snsSend": self._moment("text", ()),
            "/snsSendImage": self._moment("image", ("paths",)),
            "/snsSendUrl": self._moment("link", ()),
            "/sendVoice": self._send(34),
            "/initAddressList": lambda body: self.ok(None),
            "/getAddressList": self._address_list,
            "/getContact": self._get_contact,
            "/getChatRoomMember": self._members,
            "/acceptUser": self._accept,
            "/addUser": self._add_user,
            "/getContactLabelList": self._labels,
            "/addContactLabel": self._add_label,
        }
        for path, handler in routes.items():
            self.route("POST", path, self._guard(path, handler))
        # Download URLs carry no Authorization (as the platform's CDN links).
        self.route("GET", FILES_PREFIX, lambda request: self.media.serve(request), prefix=True)

    def reset_state(self) -> None:
        for name, value in self._config.items():
            setattr(self, name, value)
        self.callback_url: str | None = None
        self.logins: dict[str, dict] = {}  # wId -> login
        self.offline_reasons: dict[str, str] = {}
        self.friends: dict[str, dict] = {}
        self.groups: dict[str, dict] = {}
        self.labels: dict[int, str] = {}
        self.sent: list[dict] = []
        self.accepted: list[dict] = []
        self.media = SimMedia(self)
        self.moments: list[dict] = []
        self._msg_ids = itertools.count(_FIRST_MSG_ID)
        self._new_msg_ids = itertools.count(_FIRST_NEW_MSG_ID, 7919)

    def state(self) -> dict:
        with self._lock:
            return {
                "callback_url": self.callback_url,
                "logins": {k: {**v} for k, v in self.logins.items()},
                "sent": list(self.sent),
            }

    @staticmethod
    def ok(data: Any) -> Reply:
        return Reply(200, {"code": "1000", "message": "处理成功", "data": data})

    @staticmethod
    def fail(message: str, data: Any = None) -> Reply:
        return Reply(200, {"code": "1001", "message": message, "data": data})

    def fault_reply(self, request: SimRequest, fault: Fault) -> Reply | None:
        if fault.body is not None:
            return Reply(fault.status or 200, fault.body)
        if fault.kind == "auth":
            return self.fail("Authorization无效或已过期")
        if fault.kind == "rate_limit":
            headers = {"Retry-After": str(int(fault.retry_after or 1))}
            return Reply(429, "<html>429 Too Many Requests</html>", headers, "text/html")
        if fault.status and fault.status >= 400:
            return Reply(fault.status, f"<html>{fault.status}</html>", content_type="text/html")
        return self.fail(fault.message or "失败")

    def _guard(self, path: str, handler: Any) -> Any:
        def run(request: SimRequest) -> Reply:
            if path != "/member/login" and request.header("Authorization") != self.authorization:
                return self.fail("Authorization无效或已过期")
            body = request.json if isinstance(request.json, dict) else {}
            with self._lock:
                return handler(body)

        return run

    def _login(self, body: dict) -> dict | None:
        login = self.logins.get(str(body.get("wId") or ""))
        return login if login and not login.get("replaced") else None

    # -- login ---------------------------------------------------------------------------

    def _member_login(self, body: dict) -> Reply:
        if body.get("account") != self.account or body.get("password") != self.password:
            return self.fail("账号或密码错误")
        return self.ok(
            {"Authorization": self.authorization, "callbackUrl": self.callback_url, "status": 0}
        )

    def _set_callback(self, body: dict) -> Reply:
        if not body.get("httpUrl"):
            return self.fail("httpUrl不能为空")
        self.callback_url = body["httpUrl"]
        return self.ok(None)

    def _new_login(self, wcid: str) -> dict:
        # wId changes on every login; the old one stops working.
        for login in self.logins.values():
            if login.get("wcId") == wcid:
                login["replaced"] = True
        w_id = str(uuidlib.uuid4())
        login = {"wId": w_id, "wcId": wcid, "started": time.monotonic(), "online": False}
        self.logins[w_id] = login
        return login

    def _ipad_login(self, body: dict) -> Reply:
        login = self._new_login(body.get("wcId") or self.account_wxid)
        login["requested_wcId"] = body.get("wcId") or ""
        return self.ok(
            {"wId": login["wId"], "qrCodeUrl": f"http://weixin.qq.com/x/{login['wId'][:12]}"}
        )

    def confirm_login(self, w_id: str) -> None:
        with self._lock:
            self.logins[w_id]["started"] = time.monotonic() - self.login_delay - 1

    def _login_info(self, body: dict) -> Reply:
        login = self._login(body)
        if login is None:
            return self.fail("wId不存在")
        if not login["online"] and time.monotonic() - login["started"] < self.login_delay:
            return self.fail("等待扫码确认")
        login["online"] = True
        return self.ok(
            {
                "wcId": login["wcId"],
                "wId": login["wId"],
                "nickName": self.account_nickname,
                "wAccount": "sales02",
                "headUrl": "https://wx.qlogo.cn/mmhead/sim/0",
                "country": "CN",
            }
        )

    def _second_login(self, body: dict) -> Reply:
        wcid = body.get("wcId") or ""
        if wcid not in {x["wcId"] for x in self.logins.values()}:
            return self.fail("该账号未登录过，请扫码登录")
        login = self._new_login(wcid)
        login["online"] = True
        return self.ok(
            {
                "wId": login["wId"],
                "wcId": wcid,
                "nickName": self.account_nickname,
                "headUrl": "",
                "wAccount": "sales02",
                "sex": 1,
                "status": "3",
            }
        )

    def _is_online(self, body: dict) -> Reply:
        login = self._login(body)
        if login and login["online"]:
            return self.ok({"isOnline": True})
        return Reply(200, {"code": "1001", "message": "离线", "data": {"isOnline": False}})

    def _offline_reason(self, body: dict) -> Reply:
        return self.ok({"reason": self.offline_reasons.get(body.get("wcId") or "")})

    def _query_login(self, body: dict) -> Reply:
        return self.ok(
            [
                {"wcId": x["wcId"], "wId": x["wId"]}
                for x in self.logins.values()
                if x["online"] and not x.get("replaced")
            ]
        )

    def set_offline(self, w_id: str, reason: str = "手机端退出登录", notify: bool = True) -> None:
        with self._lock:
            login = self.logins[w_id]
            login["online"] = False
            self.offline_reasons[login["wcId"]] = reason
        if notify and self.callback_url:
            self.emit(
                build_callback(
                    account=self.account,
                    message_type="30000",
                    wcid=login["wcId"],
                    data={"wId": w_id, "reason": reason},
                )
            )

    # -- sending -------------------------------------------------------------------------

    def _send(self, msg_type: int, media_fields: tuple[str, ...] = ()) -> Any:
        def handler(body: dict) -> Reply:
            login = self._login(body)
            if login is None or not login["online"]:
                return self.fail("发送失败，微信已离线")
            if not body.get("wcId"):
                return self.fail("wcId不能为空")
            for field in media_fields:
                if not body.get(field):
                    return self.fail(f"{field}不能为空")
                if self.media.refused(body[field], purpose=field):
                    return self.fail("文件下载失败，请检查链接是否可以访问")
            data = {
                "type": msg_type,
                "msgId": next(self._msg_ids),
                "newMsgId": next(self._new_msg_ids),
                "createTime": int(time.time()),
                "wcId": body["wcId"],
            }
            self.sent.append({"type": msg_type, "body": body, **data})
            return self.ok(data)

        return handler

    def _download(self, body: dict) -> Reply:
        url = self.media.url_for_msg(body.get("msgId"))
        if url is None:
            return self.fail("消息不存在或已过期")
        return self.ok({"url": url})

    def _moment(self, kind: str, media_fields: tuple[str, ...]) -> Any:
        def handler(body: dict) -> Reply:
            login = self._login(body)
            if login is None or not login["online"]:
                return self.fail("发送失败，微信已离线")
            for field in media_fields:
                urls = [u for u in str(body.get(field) or "").split(";") if u]
                if not urls or len(urls) > 9:
                    return self.fail("图片数量为1-9张")
                for url in urls:
                    if self.media.refused(url, purpose=field):
                        return self.fail("图片下载失败")
            data = {
                "id": next(self._new_msg_ids),
                "userName": login["wcId"],
                "createTime": int(time.time()),
                "objectDesc": body.get("content") or "",
            }
            self.moments.append({"kind": kind, "body": body, **data})
            return self.ok(data)

        return handler

    # -- contacts ------------------------------------------------------------------------

    def generate_contacts(self, friends: int = 10, groups: int = 2, members: int = 5) -> None:
        with self._lock:
            for i in range(friends):
                wxid = f"wxid_ecust{i:04d}"
                self.friends[wxid] = {
                    "userName": wxid,
                    "nickName": f"E客户{i:04d}",
                    "remark": "",
                    "aliasName": "",
                    "sex": 1,
                    "bigHead": f"https://wx.qlogo.cn/{wxid}/0",
                    "smallHead": "",
                    "labelList": "",
                }
            for g in range(groups):
                room = f"{45000000000 + g}@chatroom"
                ids = [f"wxid_ecust{(g + j) % max(friends, 1):04d}" for j in range(members)]
                self.groups[room] = {
                    "nickName": f"E客户群{g}",
                    "members": [self.account_wxid, *dict.fromkeys(ids)],
                }

    def _address_list(self, body: dict) -> Reply:
        return self.ok(
            {"friends": list(self.friends), "chatrooms": list(self.groups), "ghs": [], "others": []}
        )

    def _get_contact(self, body: dict) -> Reply:
        ids = [x for x in str(body.get("wcId") or "").split(",") if x]
        if len(ids) > 20:
            return self.fail("wcId最多20个")
        return self.ok([self.friends[x] for x in ids if x in self.friends])

    def _members(self, body: dict) -> Reply:
        group = self.groups.get(body.get("chatRoomId") or "")
        if group is None:
            return self.fail("群不存在")
        return self.ok(
            [
                {
                    "userName": w,
                    "nickName": self.friends.get(w, {}).get("nickName", w),
                    "displayName": "",
                    "inviterUserName": self.account_wxid,
                }
                for w in group["members"]
            ]
        )

    def _accept(self, body: dict) -> Reply:
        self.accepted.append(body)
        return self.ok(None)

    def _add_user(self, body: dict) -> Reply:
        self.accepted.append(body)
        return self.ok(None)

    def _labels(self, body: dict) -> Reply:
        return self.ok([{"labelId": i, "labelName": n} for i, n in self.labels.items()])

    def _add_label(self, body: dict) -> Reply:
        name = body.get("labelName") or ""
        for label_id, existing in self.labels.items():
            if existing == name:
                return self.ok({"labelId": label_id, "labelName": name})
        label_id = len(self.labels) + 1
        self.labels[label_id] = name
        return self.ok({"labelId": label_id, "labelName": name})

    # -- webhook emitters ----------------------------------------------------------------

    def _w_id(self, to_account: str | None) -> tuple[str, str]:
        with self._lock:
            for login in self.logins.values():
                if (
                    login["online"]
                    and not login.get("replaced")
                    and to_account in (None, login["wId"], login["wcId"])
                ):
                    return login["wId"], login["wcId"]
        return to_account or "00000000-sim-wid", self.account_wxid

    def build_message(
        self,
        *,
        message_type: str,
        from_wxid: str,
        content: str,
        to_account: str | None = None,
        group: str | None = None,
        self_sent: bool = False,
        to_wxid: str | None = None,
        **extra: Any,
    ) -> dict:
        w_id, me = self._w_id(to_account)
        with self._lock:
            msg_id, new_msg_id = next(self._msg_ids), next(self._new_msg_ids)
        data: dict[str, Any] = {
            "wId": w_id,
            "fromUser": from_wxid,
            "toUser": to_wxid or (group or me),
            "content": content,
            "msgId": msg_id,
            "newMsgId": new_msg_id,
            "timestamp": int(time.time()),
            "self": self_sent,
        }
        if group:
            data["fromGroup"] = group
        data.update(extra)
        return build_callback(account=self.account, message_type=message_type, wcid=me, data=data)

    def emit(self, payload: dict, *, times: int = 1) -> dict:
        if not self.callback_url:
            raise RuntimeError("no callback URL set (call /setHttpCallbackUrl first)")
        for _ in range(times):
            self.post_json(self.callback_url, payload)
        return payload

    def emit_text(
        self, *, from_wxid: str, text: str, to_account: str | None = None, times: int = 1
    ) -> dict:
        return self.emit(
            self.build_message(
                message_type="60001", from_wxid=from_wxid, content=text, to_account=to_account
            ),
            times=times,
        )

    def emit_group_text(
        self,
        *,
        chatroom_id: str,
        sender_wxid: str,
        text: str,
        to_account: str | None = None,
        times: int = 1,
    ) -> dict:
        # Unlike GeWe, E云 puts the sender in fromUser and no "wxid:\n" prefix in content.
        return self.emit(
            self.build_message(
                message_type="80001",
                from_wxid=sender_wxid,
                content=text,
                group=chatroom_id,
                to_account=to_account,
            ),
            times=times,
        )

    def emit_self_sent(self, *, to_wxid: str, text: str, to_account: str | None = None) -> dict:
        _, me = self._w_id(to_account)
        return self.emit(
            self.build_message(
                message_type="60001",
                from_wxid=me,
                content=text,
                to_wxid=to_wxid,
                self_sent=True,
                to_account=to_account,
            )
        )

    def _emit_media(self, kind: str, payload: dict, data: bytes | None, name: str = "") -> dict:
        # The bytes become downloadable (getMsgImg...) under the posted message id.
        with self._lock:
            self.media.store(payload["data"]["msgId"], kind, data, name=name)
        return self.emit(payload)

    def emit_image(
        self,
        *,
        from_wxid: str,
        to_account: str | None = None,
        data: bytes | None = None,
        data_base64: str | None = None,
    ) -> dict:
        data = data if data is not None else decode_data(data_base64)
        payload = self.build_message(
            message_type="60002",
            from_wxid=from_wxid,
            content=image_xml(length=len(data) if data else 40960),
            to_account=to_account,
        )
        return self._emit_media("image", payload, data)

    def emit_voice(
        self,
        *,
        from_wxid: str,
        length_ms: int = 2540,
        to_account: str | None = None,
        data: bytes | None = None,
        data_base64: str | None = None,
    ) -> dict:
        data = data if data is not None else decode_data(data_base64)
        payload = self.build_message(
            message_type="60004",
            from_wxid=from_wxid,
            content=voice_xml(length_ms),
            length=4242,
            bufId="0",
            voiceLength=length_ms,
            to_account=to_account,
        )
        return self._emit_media("voice", payload, data)

    def emit_video(
        self,
        *,
        from_wxid: str,
        to_account: str | None = None,
        data: bytes | None = None,
        data_base64: str | None = None,
    ) -> dict:
        data = data if data is not None else decode_data(data_base64)
        content = (
            '<?xml version="1.0"?>\n<msg><videomsg aeskey="a1b2" cdnthumburl="3057" '
            'length="4096" playlength="7" md5="0f5b" /></msg>'
        )
        payload = self.build_message(
            message_type="60003", from_wxid=from_wxid, content=content, to_account=to_account
        )
        return self._emit_media("video", payload, data)

    def emit_file(
        self,
        *,
        from_wxid: str,
        name: str = "报价单.pdf",
        to_account: str | None = None,
        data: bytes | None = None,
        data_base64: str | None = None,
    ) -> dict:
        data = data if data is not None else decode_data(data_base64)
        ext = name.rsplit(".", 1)[-1] if "." in name else ""
        payload = self.build_message(
            message_type="60008",
            from_wxid=from_wxid,
            content=appmsg_xml(6, name, file_ext=ext, total_len=len(data) if data else 1024),
            to_account=to_account,
        )
        return self._emit_media("file", payload, data, name=name)

    def emit_friend_request(
        self, *, from_wxid: str, scene: int = 6, to_account: str | None = None
    ) -> dict:
        w_id, me = self._w_id(to_account)
        data = {
            "wId": w_id,
            "v1": f"v3_{uuidlib.uuid4().hex}@stranger",
            "v2": f"v4_{uuidlib.uuid4().hex}@stranger",
            "scene": scene,
            "fromUser": from_wxid,
        }
        return self.emit(
            build_callback(account=self.account, message_type="30001", wcid=me, data=data)
        )

    def register_device(
        self,
        *,
        wId: str,  # noqa: N803 - the platform's spelling
        wcId: str,  # noqa: N803
        nickname: str | None = None,
        online: bool = True,
        friends: list | None = None,
        groups: list | None = None,
    ) -> dict:
        """Make ``wId`` a login of ``wcId`` (online by default), as after a QR login, plus an
        optional address book: ``friends`` [{"wxid", "nickname", "remark"}], ``groups``
        [{"id", "name", "members": [wxid, ...]}]. Idempotent."""
        with self._lock:
            login = self.logins.get(wId)
            if login is None:
                login = {"wId": wId, "wcId": wcId, "started": time.monotonic() - 3600}
                self.logins[wId] = login
            login.update(wcId=wcId, online=bool(online), replaced=False)
            if nickname:
                self.account_nickname = nickname
            self.account_wxid = wcId
            for friend in friends or []:
                wxid = str(friend["wxid"])
                self.friends[wxid] = {
                    "userName": wxid,
                    "nickName": str(friend.get("nickname") or wxid),
                    "remark": str(friend.get("remark") or ""),
                    "aliasName": "",
                    "sex": 1,
                    "bigHead": "",
                    "smallHead": "",
                    "labelList": "",
                }
            for group in groups or []:
                self.groups[str(group["id"])] = {
                    "nickName": str(group.get("name") or group["id"]),
                    "members": [wcId, *(str(m) for m in group.get("members") or [])],
                }
            return {"wId": wId, "wcId": wcId, "online": login["online"]}

    def control(self, action: str, request: SimRequest) -> Reply | None:
        """``POST /__sim__/emit`` {"kind": "text", ...}; ``/__sim__/contacts``;
        ``/__sim__/confirm`` {"wId"}; ``/__sim__/devices`` (``register_device`` arguments)."""
        if action == "emit":
            return self.control_emit(request)
        if action == "media":
            self.media.strict = bool(json_object(request).get("strict"))
            return Reply(200, {"strict": self.media.strict})
        if action == "contacts":
            body = request.json if request.json is not None else {}
            if not isinstance(body, dict):
                raise ControlError("the body must be a JSON object")
            call_with_body(self.generate_contacts, body, what="contacts")
            return Reply(200, {"ok": True})
        if action == "confirm":
            w_id = require_str(json_object(request), "wId")
            with self._lock:
                if w_id not in self.logins:
                    raise ControlError(f"unknown wId {w_id!r}: start a login first", status=404)
            self.confirm_login(w_id)
            return Reply(200, {"ok": True})
        if action == "devices":
            body = json_object(request)
            for name in ("friends", "groups"):
                items = body.get(name)
                if items is not None and not (
                    isinstance(items, list) and all(isinstance(i, dict) for i in items)
                ):
                    raise ControlError(f"'{name}' must be a list of objects")
            if any("wxid" not in f for f in body.get("friends") or []):
                raise ControlError("each friend needs a 'wxid'")
            if any("id" not in g for g in body.get("groups") or []):
                raise ControlError("each group needs an 'id'")
            return Reply(200, call_with_body(self.register_device, body, what="devices"))
        return None
