"""GeWe client (open-source Gewechat at ``http://HOST:2531/v2/api`` or hosted GeWe at
``https://…/gewe/v2/api``): pass the base URL including its prefix.

Every call is a JSON POST answered with ``{"ret": 200, "msg": ..., "data": ...}``; any other
``ret`` is a failure whose meaning is only in the (Chinese) ``msg``.
"""

from __future__ import annotations

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
    MomentPage,
    SentMessage,
    WeChatPlatformClient,
    chunks,
    id_str,
    sent_message,
)

BRIEF_BATCH = 100
DETAIL_BATCH = 20

# Reconnecting a healthy account fails with this text (Gewechat #224); it means "online".
_NO_RECONNECT_NEEDED = "无需重连"


def gewe_error(body: dict, status: int | None = None) -> IntegrationError:
    """Typed error for a GeWe envelope whose ``ret`` is not 200."""
    ret = body.get("ret")
    msg = body.get("msg")
    data = body.get("data")
    detail = data.get("msg") if isinstance(data, dict) else None
    text = " ".join(str(p) for p in (msg, detail) if p) or "GeWe call failed"
    kwargs = {"status": status, "provider_code": str(ret)}
    if "X-GEWE-TOKEN" in text or "token" in text.lower():
        return AuthError(text, **kwargs)
    if msg is None and ret == 500:
        # A stale token after a container restart yields a bare {"ret":500,"msg":null}
        # (Gewechat #189, #223): re-fetch the token and re-set the callback.
        return AuthError("GeWe returned ret=500 without a message (stale token?)", **kwargs)
    if "离线" in text or "未登录" in text or "offline" in text.lower():
        return AccountOffline(text, **kwargs)
    if "频繁" in text:
        return RateLimited(text, **kwargs)
    return InvalidRequest(text, **kwargs)


class GeWeClient(WeChatPlatformClient):
    """GeWe platform client. ``hosted=True`` enables paid-only calls (Moments)."""

    service = "gewe"

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        hosted: bool = False,
        download_base: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(base_url, **kwargs)
        self.token = token
        self.hosted = hosted
        self.supports_moments = hosted
        self.moment_kinds = frozenset({"text", "image", "link"}) if hosted else frozenset()
        self.download_base = (download_base or default_download_base(self.base_url)).rstrip("/")

    def auth_headers(self) -> dict[str, str]:
        return {"X-GEWE-TOKEN": self.token} if self.token else {}

    def check_response(self, response: requests.Response) -> None:
        if response.status_code == 404:
            raise NotSupported("endpoint not found on this GeWe server", status=404)
        super().check_response(response)

    def _post(
        self,
        operation: str,
        path: str,
        body: dict | None = None,
        *,
        auth: bool = True,
        idempotent: bool = True,
        timeout: tuple[float, float] | None = None,
    ) -> Any:
        return self.call(
            operation,
            path,
            json_body=body or {},
            parse=self._parse_data,
            auth=auth,
            idempotent=idempotent,
            timeout=timeout,
        )

    def _parse_data(self, response: requests.Response) -> Any:
        self.check_response(response)
        payload = decode_json(response)
        if not isinstance(payload, dict) or "ret" not in payload:
            raise BadResponse("GeWe answer without a ret envelope", status=response.status_code)
        if payload["ret"] != 200:
            raise gewe_error(payload, response.status_code)
        return payload.get("data")

    # -- auth and login ------------------------------------------------------------------

    def fetch_token(self) -> str:
        """Open-source image only: ask the server for its token and use it from now on."""
        token = self._post("get_token", "/tools/getTokenId", auth=False)
        if not isinstance(token, str) or not token:
            raise BadResponse("getTokenId returned no token")
        self.token = token
        return token

    def set_callback(self, url: str) -> None:
        self._post("set_callback", "/tools/setCallback", {"token": self.token, "callbackUrl": url})

    def list_devices(self) -> list[str]:
        return [str(x) for x in self._post("device_list", "/login/deviceList") or []]

    def get_login_qr(
        self,
        device_id: str | None = None,
        *,
        wxid: str | None = None,
        device_type: str = "ipad",
        region_id: str | None = None,
    ) -> LoginQr:
        body: dict[str, Any] = {"appId": device_id or ""}
        if self.hosted:
            body["type"] = device_type
            if region_id:
                body["regionId"] = region_id
        data = self._post("get_login_qr", "/login/getLoginQrCode", body, idempotent=False)
        return LoginQr(
            device_id=data["appId"],
            uuid=data.get("uuid"),
            qr_data=data.get("qrData"),
            qr_image=data.get("qrImgBase64"),
        )

    def check_login(self, device_id: str, uuid: str | None = None) -> LoginStatus:
        data = self._post("check_login", "/login/checkLogin", {"appId": device_id, "uuid": uuid})
        return self._login_status(device_id, data or {})

    @staticmethod
    def _login_status(device_id: str, data: dict) -> LoginStatus:
        info = data.get("loginInfo")
        expires_in = data.get("expiredTime")
        status = data.get("status")
        if status == 2 and info:
            state = "logged_in"
        elif expires_in is not None and expires_in <= 0:
            state = "expired"
        elif status == 1 or data.get("nickName"):
            state = "scanned"
        else:
            state = "waiting"
        info = info or {}
        return LoginStatus(
            state=state,
            device_id=device_id,
            wxid=info.get("wxid"),
            nickname=info.get("nickName") or data.get("nickName"),
            expires_in=expires_in,
            raw=data,
        )

    def reconnect(self, device_id: str) -> LoginStatus:
        try:
            data = self._post("reconnect", "/login/reconnection", {"appId": device_id})
        except InvalidRequest as exc:
            if _NO_RECONNECT_NEEDED in exc.message:
                return LoginStatus(state="logged_in", device_id=device_id)
            raise
        data = data or {}
        if not data.get("status") and data.get("loginInfo"):
            data = {**data, "status": 2}
        return self._login_status(device_id, data)

    def dialog_login(
        self, device_id: str, *, wxid: str | None = None, region_id: str | None = None
    ) -> LoginQr:
        body: dict[str, Any] = {"appId": device_id}
        if self.hosted and region_id:
            body["regionId"] = region_id
        data = self._post("dialog_login", "/login/dialogLogin", body, idempotent=False) or {}
        return LoginQr(device_id=data.get("appId") or device_id, uuid=data.get("uuid"))

    def logout(self, device_id: str) -> None:
        self._post("logout", "/login/logout", {"appId": device_id})

    def is_online(self, device_id: str) -> bool:
        return bool(self._post("check_online", "/login/checkOnline", {"appId": device_id}))

    # -- messages ------------------------------------------------------------------------

    def _send(self, operation: str, path: str, device_id: str, to: str, extra: dict) -> SentMessage:
        data = self._post(
            operation, path, {"appId": device_id, "toWxid": to, **extra}, idempotent=False
        )
        return sent_message(operation, data, to=to, to_key="toWxid")

    def send_text(
        self, device_id: str, to: str, text: str, at: Sequence[str] | None = None
    ) -> SentMessage:
        extra = {"content": text}
        if at:
            extra["ats"] = ",".join(at)
        return self._send("send_text", "/message/postText", device_id, to, extra)

    def send_image(self, device_id: str, to: str, image_url: str) -> SentMessage:
        # The docs name the field imgUrl (OpenGewe's imageUrl is a client bug).
        return self._send("send_image", "/message/postImage", device_id, to, {"imgUrl": image_url})

    def send_file(self, device_id: str, to: str, file_url: str, file_name: str) -> SentMessage:
        extra = {"fileUrl": file_url, "fileName": file_name}
        return self._send("send_file", "/message/postFile", device_id, to, extra)

    def send_link(
        self, device_id: str, to: str, *, title: str, description: str, url: str, thumb_url: str
    ) -> SentMessage:
        extra = {"title": title, "desc": description, "linkUrl": url, "thumbUrl": thumb_url}
        return self._send("send_link", "/message/postLink", device_id, to, extra)

    def send_voice(self, device_id: str, to: str, voice_url: str, duration_ms: int) -> SentMessage:
        extra = {"voiceUrl": voice_url, "voiceDuration": int(duration_ms)}
        return self._send("send_voice", "/message/postVoice", device_id, to, extra)

    def send_video(
        self, device_id: str, to: str, video_url: str, *, thumb_url: str, duration_s: int
    ) -> SentMessage:
        extra = {"videoUrl": video_url, "thumbUrl": thumb_url, "videoDuration": int(duration_s)}
        return self._send("send_video", "/message/postVideo", device_id, to, extra)

    # -- downloads of received media ------------------------------------------------------

    def download_media(
        self, device_id: str, *, kind: str, msg_id: str, xml: str, meta: dict
    ) -> str:
        """``downloadImage`` (HD, then normal: not every image has HD), ``downloadVoice``,
        ``downloadVideo`` or ``downloadFile``; ``data.fileUrl`` is relative to the download
        base (port 2532 of open-source Gewechat)."""
        body: dict[str, Any] = {"appId": device_id, "xml": xml}
        if kind == "image":
            try:
                data = self._post("download_image", "/message/downloadImage", {**body, "type": 1})
            except InvalidRequest:
                data = self._post("download_image", "/message/downloadImage", {**body, "type": 2})
        elif kind == "voice":
            data = self._post(
                "download_voice", "/message/downloadVoice", {**body, "msgId": int(msg_id or 0)}
            )
        elif kind == "video":
            data = self._post("download_video", "/message/downloadVideo", body)
        elif kind == "file":
            data = self._post("download_file", "/message/downloadFile", body)
        else:
            raise NotSupported(f"GeWe has no download for {kind}")
        url = (data or {}).get("fileUrl") if isinstance(data, dict) else None
        if not url:
            raise BadResponse(f"download {kind}: no fileUrl in the answer")
        if url.startswith(("http://", "https://")):
            return url
        return f"{self.download_base}/{url.lstrip('/')}"

    # -- contacts, groups, labels --------------------------------------------------------

    def list_contacts(self, device_id: str, *, cached: bool = False) -> ContactList:
        path = "/contacts/fetchContactsListCache" if cached else "/contacts/fetchContactsList"
        # The full list is slow and grows with the friend count: give it a longer read timeout.
        timeout = (self.timeout[0], max(self.timeout[1], 120.0))
        data = self._post("list_contacts", path, {"appId": device_id}, timeout=timeout)
        data = data or {}
        return ContactList(
            friends=list(data.get("friends") or []),
            chatrooms=list(data.get("chatrooms") or []),
            ghs=list(data.get("ghs") or []),
        )

    def _contacts(
        self, operation: str, path: str, device_id: str, wxids: Sequence[str], batch: int
    ) -> list[Contact]:
        result = []
        for part in chunks(list(wxids), batch):
            for item in self._post(operation, path, {"appId": device_id, "wxids": part}) or []:
                result.append(_contact(item))
        return result

    def get_contacts_brief(self, device_id: str, wxids: Sequence[str]) -> list[Contact]:
        return self._contacts(
            "contacts_brief", "/contacts/getBriefInfo", device_id, wxids, BRIEF_BATCH
        )

    def get_contacts_detail(self, device_id: str, wxids: Sequence[str]) -> list[Contact]:
        return self._contacts(
            "contacts_detail", "/contacts/getDetailInfo", device_id, wxids, DETAIL_BATCH
        )

    def list_group_members(self, device_id: str, chatroom_id: str) -> list[GroupMember]:
        data = (
            self._post(
                "group_members",
                "/group/getChatroomMemberList",
                {"appId": device_id, "chatroomId": chatroom_id},
            )
            or {}
        )
        return [
            GroupMember(
                wxid=m.get("wxid", ""),
                nickname=m.get("nickName") or "",
                display_name=m.get("displayName") or "",
                inviter=m.get("inviterUserName") or "",
            )
            for m in data.get("memberList") or []
        ]

    def add_contact(
        self, device_id: str, *, v3: str, v4: str, scene: int, content: str = "", option: int = 2
    ) -> None:
        body = {
            "appId": device_id,
            "scene": scene,
            "option": option,
            "v3": v3,
            "v4": v4,
            "content": content,
        }
        self._post("add_contact", "/contacts/addContacts", body, idempotent=False)

    def accept_friend(self, device_id: str, *, v3: str, v4: str, scene: int) -> None:
        self.add_contact(device_id, v3=v3, v4=v4, scene=scene, option=3)

    def list_labels(self, device_id: str) -> list[Label]:
        data = self._post("list_labels", "/label/list", {"appId": device_id}) or {}
        return [
            Label(id_str(x.get("labelId")), x.get("labelName", ""))
            for x in data.get("labelList") or []
        ]

    def add_label(self, device_id: str, name: str) -> Label:
        # Idempotent on the platform side: an existing name returns its id.
        data = self._post("add_label", "/label/add", {"appId": device_id, "labelName": name})
        return Label(id_str(data.get("labelId")), data.get("labelName") or name)

    # -- moments (hosted GeWe only) ------------------------------------------------------

    def _require_hosted(self) -> None:
        if not self.hosted:
            raise NotSupported("Moments exist only on hosted GeWe")

    def post_moment_text(
        self,
        device_id: str,
        content: str,
        *,
        allow_wxids: Sequence[str] = (),
        at_wxids: Sequence[str] = (),
        private: bool = False,
    ) -> Moment:
        self._require_hosted()
        body = {
            "appId": device_id,
            "content": content,
            "allowWxIds": list(allow_wxids),
            "atWxIds": list(at_wxids),
            "disableWxIds": [],
            "allowTagIds": [],
            "disableTagIds": [],
            "privacy": private,
        }
        data = self._post("moment_post_text", "/sns/sendTextSns", body, idempotent=False)
        return _moment(data)

    @staticmethod
    def _audience() -> dict:
        return {
            "allowWxIds": [],
            "atWxIds": [],
            "disableWxIds": [],
            "allowTagIds": [],
            "disableTagIds": [],
            "privacy": False,
        }

    def post_moment_images(self, device_id: str, content: str, image_urls: Sequence[str]) -> Moment:
        """``uploadSnsImage`` (the platform fetches the URLs) then ``sendImgSns`` with the
        returned ``imgInfos`` (the spec's upload -> imgInfos flow)."""
        self._require_hosted()
        infos = self._post(
            "moment_upload_images",
            "/sns/uploadSnsImage",
            {"appId": device_id, "imgUrls": list(image_urls)},
            idempotent=False,
        )
        if not isinstance(infos, list) or not infos:
            raise BadResponse("uploadSnsImage returned no imgInfos")
        body = {"appId": device_id, "content": content, "imgInfos": infos, **self._audience()}
        return _moment(self._post("moment_post_images", "/sns/sendImgSns", body, idempotent=False))

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
        self._require_hosted()
        body = {
            "appId": device_id,
            "content": content,
            "title": title,
            "description": description,
            "linkUrl": url,
            "thumbUrl": thumb_url,
            **self._audience(),
        }
        return _moment(self._post("moment_post_link", "/sns/sendUrlSns", body, idempotent=False))

    def list_moments(
        self, device_id: str, max_id: str = "0", first_page_md5: str = ""
    ) -> MomentPage:
        self._require_hosted()
        body = {
            "appId": device_id,
            "maxId": int(max_id or 0),
            "decrypt": True,
            "firstPageMd5": first_page_md5,
        }
        data = self._post("moment_list", "/sns/snsList", body) or {}
        return MomentPage(
            items=[_moment(x) for x in data.get("snsList") or []],
            max_id=id_str(data.get("maxId") or 0),
            first_page_md5=data.get("firstPageMd5") or "",
        )


def default_download_base(base_url: str) -> str:
    """Open-source Gewechat serves downloads on port 2532 under ``/download`` (its API is on
    2531); any other deployment: the API's origin + ``/download``. Override per connection
    with ``extra["download_base_url"]``."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    netloc = parts.netloc
    if parts.port == 2531:
        netloc = netloc.rsplit(":", 1)[0] + ":2532"
    return f"{parts.scheme}://{netloc}/download"


def _contact(item: dict) -> Contact:
    labels = item.get("labelList") or ""
    return Contact(
        wxid=item.get("userName") or "",
        nickname=item.get("nickName") or "",
        remark=item.get("remark") or "",
        alias=item.get("alias") or "",
        sex=item.get("sex"),
        avatar_url=item.get("bigHeadImgUrl") or item.get("smallHeadImgUrl") or "",
        label_ids=[x for x in str(labels).split(",") if x],
        raw=item,
    )


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
