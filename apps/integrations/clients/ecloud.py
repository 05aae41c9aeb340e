"""E云管家 (wkteam) client. The base URL is account-specific (``http://IP:port``).

Envelope ``{"code": "1000", "message": ..., "data": ...}`` with a *string* code; failures are
``"1001"`` with the meaning only in the text (docs call it ``msg``, examples ``message``).
``wId`` (our ``device_id``) changes on every login; ``wcId`` is the account's wxid.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import requests

from .base import decode_json
from .errors import (
    AccountOffline,
    AuthError,
    BadResponse,
    IntegrationError,
    InvalidRequest,
    NotSupported,
    RateLimited,
)
from .wechat import (
    Contact,
    ContactList,
    GroupMember,
    Label,
    LoginQr,
    LoginStatus,
    Moment,
    SentMessage,
    WeChatPlatformClient,
    chunks,
    id_str,
    sent_message,
)

CONTACT_BATCH = 20
_OK = "1000"


def ecloud_error(body: dict, status: int | None = None) -> IntegrationError:
    """Typed error for an E云 envelope whose ``code`` is not ``"1000"``. The texts are not
    documented; the classification below is keyword-based [inferred]."""
    text = str(body.get("message") or body.get("msg") or "E云 call failed")
    kwargs = {"status": status, "provider_code": str(body.get("code"))}
    low = text.lower()
    if "authorization" in low or "授权" in text or "token" in low or "密码" in text:
        return AuthError(text, **kwargs)
    if "离线" in text or "掉线" in text or "不在线" in text or "offline" in low:
        return AccountOffline(text, **kwargs)
    if "频繁" in text:
        return RateLimited(text, **kwargs)
    return InvalidRequest(text, **kwargs)


def _envelope(response: requests.Response) -> dict:
    payload = decode_json(response)
    if not isinstance(payload, dict) or "code" not in payload:
        raise BadResponse("E云 answer without a code envelope", status=response.status_code)
    return payload


class ECloudClient(WeChatPlatformClient):
    """E云管家 client. ``authorization`` comes from ``member_login`` (permanent once made)."""

    service = "ecloud"
    # Posting text, image and link Moments (snsSend, snsSendImage, snsSendUrl); no timeline
    # listing in this client yet.
    supports_moments = False
    moment_kinds = frozenset({"text", "image", "link"})

    def __init__(
        self,
        base_url: str,
        authorization: str | None = None,
        *,
        callback_type: int = 2,
        contact_gap: tuple[float, float] = (0.3, 0.8),
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, **kwargs)
        self.authorization = authorization
        self.callback_type = callback_type
        # The docs ask for a random 300-800 ms pause between getContact calls.
        self.contact_gap = contact_gap

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": self.authorization} if self.authorization else {}

    def _parse_data(self, response: requests.Response) -> Any:
        self.check_response(response)
        payload = _envelope(response)
        if str(payload["code"]) != _OK:
            raise ecloud_error(payload, response.status_code)
        return payload.get("data")

    def _post(
        self,
        operation: str,
        path: str,
        body: dict | None = None,
        *,
        auth: bool = True,
        idempotent: bool = True,
    ) -> Any:
        return self.call(
            operation,
            path,
            json_body=body or {},
            parse=self._parse_data,
            auth=auth,
            idempotent=idempotent,
        )

    # -- auth and login ------------------------------------------------------------------

    def member_login(self, account: str, password: str) -> str:
        """Developer-account login; stores and returns the Authorization value."""
        data = (
            self._post(
                "member_login",
                "/member/login",
                {"account": account, "password": password},
                auth=False,
            )
            or {}
        )
        if data.get("status") not in (None, 0, "0"):
            raise AuthError(f"E云 developer account status {data.get('status')} (frozen/expired)")
        if not data.get("Authorization"):
            raise BadResponse("member/login returned no Authorization")
        self.authorization = data["Authorization"]
        return self.authorization

    def set_callback(self, url: str) -> None:
        self._post(
            "set_callback", "/setHttpCallbackUrl", {"httpUrl": url, "type": self.callback_type}
        )

    def get_login_qr(
        self,
        device_id: str | None = None,
        *,
        wxid: str | None = None,
        device_type: str = "ipad",
        proxy: int | None = None,
    ) -> LoginQr:
        # Re-login must pass the account's wcId, or the account drops often (docs).
        body: dict[str, Any] = {"wcId": wxid or "", "deviceType": device_type}
        if proxy is not None:
            body["proxy"] = proxy
        data = self._post("get_login_qr", "/iPadLogin", body, idempotent=False) or {}
        return LoginQr(device_id=id_str(data.get("wId")), uuid=None, qr_data=data.get("qrCodeUrl"))

    def check_login(self, device_id: str, uuid: str | None = None) -> LoginStatus:
        def parse(response: requests.Response) -> LoginStatus:
            self.check_response(response)
            payload = _envelope(response)
            data = payload.get("data") or {}
            if str(payload["code"]) != _OK or not data.get("wcId"):
                # Fails until the QR is scanned and confirmed.
                return LoginStatus(state="waiting", device_id=device_id, raw=payload)
            return LoginStatus(
                state="logged_in",
                device_id=id_str(data.get("wId") or device_id),
                wxid=data.get("wcId"),
                nickname=data.get("nickName"),
                raw=data,
            )

        body = {"wId": device_id, "autoCheck": False}
        return self.call("check_login", "/getIPadLoginInfo", json_body=body, parse=parse)

    def reconnect(self, device_id: str) -> LoginStatus:
        raise NotSupported("E云 has no reconnect call: use dialog_login with the account wxid")

    def dialog_login(self, device_id: str, *, wxid: str | None = None) -> LoginQr:
        if not wxid:
            raise ValueError("E云 secondLogin needs the account wxid (wcId)")
        data = self._post("dialog_login", "/secondLogin", {"wcId": wxid}, idempotent=False) or {}
        # The new wId replaces the old one: store it.
        return LoginQr(device_id=id_str(data.get("wId")), uuid=None)

    def logout(self, device_id: str) -> None:
        raise NotSupported("the E云 protocol documents no logout call")

    def is_online(self, device_id: str) -> bool:
        def parse(response: requests.Response) -> bool:
            self.check_response(response)
            payload = _envelope(response)
            if str(payload["code"]) != _OK:
                if "isOnline" in (payload.get("data") or {}) or "离线" in str(
                    payload.get("message") or payload.get("msg")
                ):
                    return False  # the docs: code 1001 means offline
                raise ecloud_error(payload, response.status_code)
            return bool((payload.get("data") or {}).get("isOnline", True))

        return self.call("check_online", "/isOnline", json_body={"wId": device_id}, parse=parse)

    def offline_reason(self, wxid: str) -> str | None:
        return (self._post("offline_reason", "/offlineReason", {"wcId": wxid}) or {}).get("reason")

    # -- messages ------------------------------------------------------------------------

    def _send(self, operation: str, path: str, device_id: str, to: str, extra: dict) -> SentMessage:
        data = self._post(
            operation, path, {"wId": device_id, "wcId": to, **extra}, idempotent=False
        )
        return sent_message(operation, data, to=to, to_key="wcId")

    def send_text(
        self, device_id: str, to: str, text: str, at: Sequence[str] | None = None
    ) -> SentMessage:
        extra = {"content": text}
        if at:
            extra["at"] = ",".join(at)
        return self._send("send_text", "/sendText", device_id, to, extra)

    def send_image(self, device_id: str, to: str, image_url: str) -> SentMessage:
        return self._send("send_image", "/sendImage2", device_id, to, {"content": image_url})

    def send_file(self, device_id: str, to: str, file_url: str, file_name: str) -> SentMessage:
        extra = {"path": file_url, "fileName": file_name}
        return self._send("send_file", "/sendFile", device_id, to, extra)

    def send_link(
        self, device_id: str, to: str, *, title: str, description: str, url: str, thumb_url: str
    ) -> SentMessage:
        extra = {"title": title, "url": url, "description": description, "thumbUrl": thumb_url}
        return self._send("send_link", "/sendUrl", device_id, to, extra)

    def send_voice(self, device_id: str, to: str, voice_url: str, duration_ms: int) -> SentMessage:
        extra = {"content": voice_url, "length": int(duration_ms)}
        return self._send("send_voice", "/sendVoice", device_id, to, extra)

    def send_video(
        self, device_id: str, to: str, video_url: str, *, thumb_url: str, duration_s: int
    ) -> SentMessage:
        # [I] field names of /sendVideo: path (video URL) and thumbPath (cover image URL).
        extra = {"path": video_url, "thumbPath": thumb_url}
        return self._send("send_video", "/sendVideo", device_id, to, extra)

    # -- downloads of received media ------------------------------------------------------

    def download_media(
        self, device_id: str, *, kind: str, msg_id: str, xml: str, meta: dict
    ) -> str:
        """``getMsgImg`` / ``getMsgVoice`` (documented) and ``getMsgVideo`` / ``getMsgFile``
        [I: same shape as getMsgImg]; each answers ``data.url`` (valid 7 days)."""
        body: dict[str, Any] = {"wId": device_id, "msgId": int(msg_id or 0)}
        if kind == "image":
            data = self._post("download_image", "/getMsgImg", {**body, "content": xml, "type": 0})
        elif kind == "voice":
            body.update(
                length=int(meta.get("length") or 0),
                bufId=str(meta.get("bufId") or "0"),
                fromUser=meta.get("from_user") or "",
            )
            data = self._post("download_voice", "/getMsgVoice", body)
        elif kind == "video":
            data = self._post("download_video", "/getMsgVideo", {**body, "content": xml})
        elif kind == "file":
            data = self._post("download_file", "/getMsgFile", {**body, "content": xml})
        else:
            raise NotSupported(f"E云 has no download for {kind}")
        url = (data or {}).get("url") if isinstance(data, dict) else None
        if not url:
            raise BadResponse(f"download {kind}: no url in the answer")
        return url

    # -- moments ---------------------------------------------------------------------------

    def post_moment_text(self, device_id: str, content: str, **_: Any) -> Moment:
        data = self._post(
            "moment_post_text", "/snsSend", {"wId": device_id, "content": content}, idempotent=False
        )
        return _moment(data)

    def post_moment_images(self, device_id: str, content: str, image_urls: Sequence[str]) -> Moment:
        # paths: "url;url" (png/jpg, at most 3 MB each, the platform fetches them).
        body = {"wId": device_id, "content": content, "paths": ";".join(image_urls)}
        return _moment(self._post("moment_post_images", "/snsSendImage", body, idempotent=False))

    def post_moment_link(
        self,
        device_id: str,
        content: str,
        *,
        title: str,
        description: str,
        url: str,
        thumb_url: str,
    ) -> Moment:
        # [I] field names of /snsSendUrl, following /sendUrl.
        body = {
            "wId": device_id,
            "content": content,
            "title": title,
            "url": url,
            "description": description,
            "thumbUrl": thumb_url,
        }
        return _moment(self._post("moment_post_link", "/snsSendUrl", body, idempotent=False))

    # -- contacts, groups, labels --------------------------------------------------------

    def list_contacts(self, device_id: str) -> ContactList:
        self._post("init_contacts", "/initAddressList", {"wId": device_id})
        data = self._post("list_contacts", "/getAddressList", {"wId": device_id}) or {}
        return ContactList(
            friends=list(data.get("friends") or []),
            chatrooms=list(data.get("chatrooms") or []),
            ghs=list(data.get("ghs") or []),
        )

    def get_contacts_detail(self, device_id: str, wxids: Sequence[str]) -> list[Contact]:
        result = []
        for index, part in enumerate(chunks(list(wxids), CONTACT_BATCH)):
            if index:
                self.sleep(random.uniform(*self.contact_gap))
            data = (
                self._post(
                    "contacts_detail", "/getContact", {"wId": device_id, "wcId": ",".join(part)}
                )
                or []
            )
            result.extend(_contact(item) for item in data)
        return result

    # E云 has a single contact-info call.
    get_contacts_brief = get_contacts_detail

    def list_group_members(self, device_id: str, chatroom_id: str) -> list[GroupMember]:
        data = (
            self._post(
                "group_members", "/getChatRoomMember", {"wId": device_id, "chatRoomId": chatroom_id}
            )
            or []
        )
        return [
            GroupMember(
                wxid=m.get("userName") or m.get("wcId") or "",
                nickname=m.get("nickName") or "",
                display_name=m.get("displayName") or "",
                inviter=m.get("inviterUserName") or "",
            )
            for m in data
        ]

    def accept_friend(self, device_id: str, *, v3: str, v4: str, scene: int) -> None:
        """``v3``/``v4`` are E云's ``v1``/``v2`` from the 30001 callback."""
        self._post(
            "accept_friend",
            "/acceptUser",
            {"wId": device_id, "v1": v3, "v2": v4, "type": scene},
            idempotent=False,
        )

    def add_contact(
        self, device_id: str, *, v3: str, v4: str, scene: int, content: str = ""
    ) -> None:
        body = {"wId": device_id, "v1": v3, "v2": v4, "type": scene, "verify": content}
        self._post("add_contact", "/addUser", body, idempotent=False)

    def list_labels(self, device_id: str) -> list[Label]:
        data = self._post("list_labels", "/getContactLabelList", {"wId": device_id}) or []
        return [Label(id_str(x.get("labelId")), x.get("labelName", "")) for x in data]

    def add_label(self, device_id: str, name: str) -> Label:
        data = self._post("add_label", "/addContactLabel", {"wId": device_id, "labelName": name})
        data = data or {}
        return Label(id_str(data.get("labelId")), data.get("labelName") or name)


def _moment(data: Any) -> Moment:
    if not isinstance(data, dict):
        raise BadResponse("Moments answer without data")
    return Moment(
        moment_id=id_str(data.get("id")),
        wxid=data.get("userName") or "",
        nickname=data.get("nickName") or "",
        create_time=int(data.get("createTime") or 0),
        raw=data,
    )


def _contact(item: dict) -> Contact:
    labels = item.get("labelList") or ""
    return Contact(
        wxid=item.get("userName") or "",
        nickname=item.get("nickName") or "",
        remark=item.get("remark") or "",
        alias=item.get("aliasName") or item.get("alias") or "",
        sex=item.get("sex"),
        avatar_url=item.get("bigHead") or item.get("smallHead") or "",
        label_ids=[x for x in str(labels).split(",") if x],
        raw=item,
    )
