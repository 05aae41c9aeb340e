"""GeWe simulator: media sends, downloads of received media, image and link Moments (issue 20).

A mixin of ``GeWeSimulator`` (state in ``self.media``, a ``SimMedia``):

- ``postImage`` / ``postFile`` / ``postVideo`` fetch ``imgUrl`` / ``fileUrl`` / ``videoUrl`` (+
  ``thumbUrl``) like the GeWe server does; in strict mode a failed fetch fails the send.
- ``downloadImage`` / ``downloadVideo`` / ``downloadFile`` find the file by the callback XML
  they are given, ``downloadVoice`` by ``msgId``; they answer ``data.fileUrl`` relative to the
  download base (served here under ``GET /download/<token>``, as port 2532 of Gewechat does).
- ``/sns/uploadSnsImage`` fetches up to nine ``imgUrls`` and answers ``imgInfos``;
  ``/sns/sendImgSns`` and ``/sns/sendUrlSns`` post the Moment.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from typing import Any

from apps.integrations.simulators.core import Reply
from apps.integrations.simulators.gewe.payloads import appmsg_xml, image_xml, voice_xml
from apps.integrations.simulators.media import SimMedia, decode_data

DOWNLOAD_PREFIX = "/download/"
_VIDEO_XML = (
    '<?xml version="1.0"?>\n<msg><videomsg aeskey="{key}" cdnthumburl="3057" length="{length}" '
    'playlength="7" md5="{md5}" /></msg>'
)


class GeWeMediaMixin:
    """Media endpoints of the GeWe simulator (see the module docstring)."""

    media: SimMedia

    def media_reset(self) -> None:
        """Forget the media state (called by ``GeWeSimulator.reset_state``)."""
        self.media = SimMedia(self)

    def media_routes(self) -> None:
        """Register the media routes (called by ``GeWeSimulator.__init__``)."""
        routes = {
            "/message/postImage": self._media_send(3, ("imgUrl",)),
            "/message/postFile": self._media_send(6, ("fileUrl",)),
            "/message/postVideo": self._media_send(43, ("videoUrl", "thumbUrl")),
            "/message/downloadImage": self._download("image"),
            "/message/downloadVoice": self._download("voice"),
            "/message/downloadVideo": self._download("video"),
            "/message/downloadFile": self._download("file"),
            "/sns/uploadSnsImage": self._sns_upload_images,
            "/sns/sendImgSns": self._sns_media_post("image"),
            "/sns/sendUrlSns": self._sns_media_post("link"),
        }
        for path, handler in routes.items():
            self.route("POST", path, self._guard(path, handler))
        self.route("GET", DOWNLOAD_PREFIX, lambda request: self.media.serve(request), prefix=True)

    # -- sending ---------------------------------------------------------------------------

    def _media_send(self, msg_type: int, fields: tuple[str, ...]) -> Any:
        plain = self._send(msg_type)

        def handler(body: dict) -> Reply:
            device = self._device(body)
            if device is None or not device["online"] or device.get("send_fails"):
                return plain(body)  # the plain handler answers the offline errors
            for field in fields:
                if not body.get(field):
                    return self.fail(f"{field}不能为空")
                if self.media.refused(body[field], purpose=field):
                    return self.fail("文件下载失败")
            return plain(body)

        return handler

    # -- downloads -------------------------------------------------------------------------

    def _download(self, kind: str) -> Any:
        def handler(body: dict) -> Reply:
            key = str(body.get("msgId")) if kind == "voice" else str(body.get("xml") or "")
            path = self.media.path_for_msg(f"{kind}:{key}")
            if path is None:
                return self.fail("下载失败", {"code": "-1", "msg": "文件不存在或已过期"})
            return self.ok({"fileUrl": f"{path}"})

        return handler

    def build_media_message(
        self,
        *,
        kind: str,
        from_wxid: str,
        to_account: str | None = None,
        data: bytes | None = None,
        data_base64: str | None = None,
        file_name: str = "报价单.pdf",
        seed: int = 0,
    ) -> dict:
        """An ``AddMsg`` of a received image / voice / video / file whose bytes the download
        APIs serve (the real payload shapes: MsgType 3, 34, 43, 49 with appmsg type 6)."""
        data = data if data is not None else decode_data(data_base64)
        make = {"image": 3, "voice": 34, "video": 43, "file": 49}
        if kind not in make:
            raise ValueError(f"unknown media kind {kind!r}")
        digest = hashlib.md5(uuid.uuid4().bytes).hexdigest()  # noqa: S324 - a fake CDN md5
        length = len(data) if data else 40960
        content = {
            "image": lambda: image_xml(md5=digest, length=length),
            "voice": lambda: voice_xml(2540),
            "video": lambda: _VIDEO_XML.format(key=digest[:16], length=length, md5=digest),
            "file": lambda: appmsg_xml(
                6, file_name, file_ext=file_name.rsplit(".", 1)[-1], total_len=length
            ),
        }[kind]()
        payload = self._msg(to_account, from_wxid=from_wxid, msg_type=make[kind], content=content)
        key = str(payload["Data"]["MsgId"]) if kind == "voice" else content
        with self._lock:
            self.media.store(f"{kind}:{key}", kind, data, seed=seed, name=file_name)
        return payload

    def emit_media(
        self,
        *,
        media: str,
        from_wxid: str,
        to_account: str | None = None,
        data_base64: str | None = None,
        file_name: str = "报价单.pdf",
    ) -> dict:
        """Post a received image / voice / video / file (``media``) whose bytes the download
        APIs then serve; ``POST /__sim__/emit`` {"kind": "media", "media": "image",
        "from_wxid": ..., "data_base64"?: ...}."""
        return self.emit(
            self.build_media_message(
                kind=media,
                from_wxid=from_wxid,
                to_account=to_account,
                data_base64=data_base64,
                file_name=file_name,
            )
        )

    # -- Moments ---------------------------------------------------------------------------

    def _sns_upload_images(self, body: dict) -> Reply:
        device = self._device(body)
        if device is None or not device["online"]:
            return self.fail("上传朋友圈图片失败-微信已离线(-1)")
        urls = [u for u in body.get("imgUrls") or [] if u]
        if not urls or len(urls) > 9:
            return self.fail("图片数量为1-9张")
        infos = []
        for url in urls:
            entry = self.media.fetch(url, purpose="imgUrls")
            if self.media.strict and entry["status"] != 200:
                return self.fail("上传朋友圈图片失败")
            infos.append(
                {
                    "fileUrl": f"http://szmmsns.qpic.cn/sim/{uuid.uuid4().hex}/0",
                    "thumbUrl": f"http://szmmsns.qpic.cn/sim/{uuid.uuid4().hex}/150",
                    "fileMd5": entry.get("sha256", "")[:32],
                    "length": entry.get("size", 0),
                    "width": 800,
                    "height": 600,
                }
            )
        return self.ok(infos)

    def _sns_media_post(self, kind: str) -> Any:
        def handler(body: dict) -> Reply:
            device = self._device(body)
            if device is None or not device["online"]:
                return self.fail("发送朋友圈失败-微信已离线(-1)")
            if kind == "image" and not body.get("imgInfos"):
                return self.fail("imgInfos不能为空")
            if kind == "link" and not (body.get("linkUrl") and body.get("title")):
                return self.fail("链接和标题不能为空")
            item = {
                "id": next(self._sns_ids),
                "userName": self.account_wxid,
                "nickName": self.account_nickname,
                "createTime": int(time.time()),
                "snsXml": f"<TimelineObject><contentDesc>{body.get('content', '')}"
                "</contentDesc></TimelineObject>",
                "likeList": [],
                "commentList": [],
                "kind": kind,
                "body": body,
            }
            self.moments.insert(0, item)
            return self.ok({k: item[k] for k in ("id", "userName", "nickName", "createTime")})

        return handler
