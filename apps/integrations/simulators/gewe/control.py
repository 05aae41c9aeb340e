"""The GeWe simulator's control endpoints (``POST /__sim__/<action>``), validated so that bad
input is a 4xx with a clear message:

- ``emit``     {"kind": "text", ...arguments of ``emit_<kind>``}: post a webhook event
               (409 while no callback URL is registered);
- ``contacts`` {"friends", "groups", "members"}: generate an address book;
- ``confirm``  {"appId"}: the phone confirms the pending QR login now (404: unknown device);
- ``devices``  {"appId", "wxid", "nickname"?, "online"?, "friends"?, "groups"?}: register a
               device that is already logged in, with its address book (``register_device``).
"""

from __future__ import annotations

from typing import Any

from apps.integrations.simulators.core import (
    ControlError,
    Reply,
    SimRequest,
    call_with_body,
    json_object,
    require_str,
)


class GeWeControls:
    """Mixin of ``GeWeSimulator``: control actions and device registration."""

    def register_device(
        self,
        *,
        appId: str,  # noqa: N803 - the platform's spelling
        wxid: str,
        nickname: str | None = None,
        online: bool = True,
        friends: list | None = None,
        groups: list | None = None,
    ) -> dict:
        """Make ``appId`` a device logged in as ``wxid`` (online by default), as after a QR
        login, plus an optional address book: ``friends`` [{"wxid", "nickname", "remark"}],
        ``groups`` [{"id", "name", "members": [wxid, ...]}]. Idempotent."""
        with self._lock:
            device = self.devices.setdefault(
                appId, {"app_id": appId, "online": False, "wxid": None, "send_fails": False}
            )
            device.update(wxid=wxid, online=bool(online), send_fails=False)
            if nickname:
                device["nickname"] = nickname
            for friend in friends or []:
                friend_wxid = str(friend["wxid"])
                self.friends[friend_wxid] = {
                    "userName": friend_wxid,
                    "nickName": str(friend.get("nickname") or friend_wxid),
                    "remark": str(friend.get("remark") or ""),
                    "alias": "",
                    "sex": 1,
                    "signature": "",
                    "country": "CN",
                    "province": "",
                    "city": "",
                    "bigHeadImgUrl": "",
                    "smallHeadImgUrl": "",
                    "labelList": "",
                    "phoneNumList": None,
                }
            for group in groups or []:
                self.groups[str(group["id"])] = {
                    "nickName": str(group.get("name") or group["id"]),
                    "owner": wxid,
                    "members": [wxid, *(str(m) for m in group.get("members") or [])],
                }
            return {"appId": appId, "wxid": wxid, "online": device["online"]}

    def wxid_for_new_login(self) -> str:
        """The wxid a newly confirmed QR login gets: the simulator's account wxid while no
        other device uses it, else a numbered one (a second phone is a second WeChat)."""
        taken = {d.get("wxid") for d in self.devices.values()}
        if self.account_wxid not in taken:
            return self.account_wxid
        n = 2
        while f"{self.account_wxid}_{n}" in taken:
            n += 1
        return f"{self.account_wxid}_{n}"

    def control(self, action: str, request: SimRequest) -> Reply | None:
        if action == "emit":
            return self.control_emit(request)
        if action == "contacts":
            body = request.json if request.json is not None else {}
            if not isinstance(body, dict):
                raise ControlError("the body must be a JSON object")
            call_with_body(self.generate_contacts, body, what="contacts")
            return Reply(200, {"ok": True})
        if action == "confirm":
            app_id = require_str(json_object(request), "appId")
            with self._lock:
                if app_id not in self.devices:
                    raise ControlError(f"unknown appId {app_id!r}: start a login first", 404)
            self.confirm_login(app_id)
            return Reply(200, {"ok": True})
        if action == "devices":
            body = json_object(request)
            _check_address_book(body)
            return Reply(200, call_with_body(self.register_device, body, what="devices"))
        return None


def _check_address_book(body: dict[str, Any]) -> None:
    for name, key in (("friends", "wxid"), ("groups", "id")):
        items = body.get(name)
        if items is None:
            continue
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise ControlError(f"'{name}' must be a list of objects")
        if any(key not in item for item in items):
            raise ControlError(f"each of '{name}' needs a '{key}'")
