"""The parsed-event types and the payload helpers (JSON fields, XML bodies) both parsers use."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apps.integrations.models import PlatformConnection

Provider = PlatformConnection.Provider


class WebhookRejected(Exception):
    """The body is not JSON or not the platform's shape (answered 400, stored as rejected)."""


# -- parsed events ---------------------------------------------------------------------------


@dataclass
class InboundMessage:
    """A chat message as the conversations app needs it, whatever the platform."""

    platform_msg_id: str
    chat_wxid: str  # the conversation's contact: the customer, or the group (...@chatroom)
    kind: str = "text"  # text image voice video file link emoji system other
    text: str = ""
    is_group: bool = False
    sender_wxid: str = ""  # in groups: the member who wrote
    sender_name: str = ""
    self_sent: bool = False  # written by the account itself (from the phone, or our echo)
    at_wxids: list[str] = field(default_factory=list)
    media_url: str = ""
    meta: dict = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass
class ParsedEvent:
    """The result of parsing one callback. ``kind``: message, friend_request, contact_update,
    contact_delete, offline, ignored."""

    kind: str
    event_type: str
    device_id: str = ""
    account_wxid: str = ""
    message: InboundMessage | None = None
    data: dict = field(default_factory=dict)
    reason: str = ""


def _ignored(event_type: str, reason: str, **kwargs: Any) -> ParsedEvent:
    return ParsedEvent("ignored", event_type, reason=reason, **kwargs)


def _ts(value: Any) -> datetime | None:
    """A unix time in seconds, or None (the receive time is used) when it is missing, garbage or
    out of any calendar (a timestamp of 1e20 once failed the event five times and lost it)."""
    try:
        seconds = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if seconds <= 0 or seconds > MAX_TIMESTAMP:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


MAX_TIMESTAMP = 4102444800  # 2100-01-01: later "timestamps" are garbage


def _str_id(value: Any) -> str:
    """Platform ids exceed 2^53: keep their decimal digits as a string (never a float)."""
    if value is None or isinstance(value, bool):
        return ""
    if isinstance(value, float):
        value = int(value)
    return str(value).strip()


def _inner(value: Any) -> str:
    """GeWe wraps strings as ``{"string": ...}``."""
    if isinstance(value, dict):
        value = value.get("string", "")
    return "" if value is None else str(value)


def _ci(mapping: dict, *names: str) -> Any:
    """Case-insensitive key lookup (newer GeWe builds send lowercase / snake_case keys)."""
    lowered = {str(k).lower().replace("_", ""): v for k, v in mapping.items()}
    for name in names:
        key = name.lower().replace("_", "")
        if key in lowered:
            return lowered[key]
    return None


# -- XML helpers -----------------------------------------------------------------------------

_XML_START = re.compile(r"<\?xml|<msg|<sysmsg", re.IGNORECASE)


def _xml(content: str) -> ET.Element | None:
    """The XML element of a message body (text before ``<?xml``/``<msg`` stripped), or None."""
    if not content:
        return None
    match = _XML_START.search(content)
    if not match:
        return None
    text = content[match.start() :]
    if text.startswith("<?xml"):
        text = text[text.find("?>") + 2 :]
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        return None  # never expand entities from the outside
    try:
        return ET.fromstring(text.strip())  # noqa: S314 - DOCTYPE/ENTITY refused above
    except ET.ParseError:
        return None


def _find_text(root: ET.Element | None, path: str) -> str:
    if root is None:
        return ""
    node = root.find(path)
    return (node.text or "").strip() if node is not None and node.text else ""


APPMSG_KINDS = {
    5: "link",
    6: "file",
    33: "link",
    36: "link",
    51: "link",
    57: "text",
    2000: "system",
    2001: "system",
}


def _appmsg(content: str, message: InboundMessage) -> str | None:
    """Fill ``message`` from an app message (MsgType 49) body; returns an ignore reason."""
    root = _xml(content)
    appmsg = root.find("appmsg") if root is not None else None
    if appmsg is None:
        message.kind, message.text = "other", content[:2000]
        message.meta["appmsg_type"] = None
        return None
    try:
        app_type = int(_find_text(appmsg, "type") or 0)
    except ValueError:
        app_type = 0
    title = _find_text(appmsg, "title")
    message.meta["appmsg_type"] = app_type
    if app_type == 74:
        return "file announced, not yet downloadable (type 74; type 6 follows)"
    if app_type == 5 and "邀请你加入群聊" in title:
        message.kind = "system"
        message.meta["group_invite"] = True
    else:
        message.kind = APPMSG_KINDS.get(app_type, "other")
    if app_type == 57:  # a quoted reply: the new text is the title
        refer = appmsg.find("refermsg")
        message.text = title
        if refer is not None:
            message.meta["quote"] = {
                "name": _find_text(refer, "displayname"),
                "text": _find_text(refer, "content")[:500],
                "msg_id": _find_text(refer, "svrid"),
                "from": _find_text(refer, "chatusr") or _find_text(refer, "fromusr"),
            }
        return None
    if app_type in (33, 36):
        message.meta["mini_program"] = {
            "title": title,
            "app": _find_text(appmsg, "sourcedisplayname"),
            "page": _find_text(appmsg, "weappinfo/pagepath"),
        }
    if app_type == 6:
        message.meta["file"] = {
            "name": title,
            "ext": _find_text(appmsg, "appattach/fileext"),
            "size": _find_text(appmsg, "appattach/totallen"),
        }
    if app_type == 2000:
        title = title or "[转账]"
    if app_type == 2001:
        title = title or "[红包]"
    message.text = title
    url = _find_text(appmsg, "url")
    if url.startswith(("http://", "https://")):
        message.media_url = url[:1000]
    description = _find_text(appmsg, "des")
    if description:
        message.meta["description"] = description[:500]
    return None


def _media_meta(kind: str, content: str) -> dict:
    root = _xml(content)
    if root is None:
        return {}
    if kind == "image":
        img = root.find("img")
        if img is not None:
            return {k: img.get(k, "") for k in ("md5", "length", "aeskey", "cdnmidimgurl")}
    if kind == "voice":
        voice = root.find("voicemsg")
        if voice is not None:
            return {"voice_length_ms": voice.get("voicelength", ""), "bufid": voice.get("bufid")}
    if kind == "video":
        video = root.find("videomsg")
        if video is not None:
            return {"play_length": video.get("playlength", ""), "md5": video.get("md5", "")}
    if kind == "emoji":
        emoji = root.find("emoji")
        if emoji is not None:
            return {"md5": emoji.get("md5", ""), "cdnurl": emoji.get("cdnurl", "")}
    return {}


GROUP_MEMBER_PATTERNS = (
    (re.compile(r"加入了群聊|joined the group|加入群聊"), "member_joined"),
    (
        re.compile(r"移出了群聊|移出群聊|removed .* from the group|退出了群聊|left the group"),
        "member_removed",
    ),
    (re.compile(r"修改群名为|changed the group name"), "group_renamed"),
    (re.compile(r"群主|new group owner"), "owner_changed"),
)


def _system_meta(text: str) -> dict:
    for pattern, event in GROUP_MEMBER_PATTERNS:
        if pattern.search(text):
            return {"group_event": event}
    return {}


# -- media downloads (issue 20) ----------------------------------------------------------------

MEDIA_KINDS = ("image", "voice", "video", "file")


def attach_download(message: InboundMessage, *, msg_id: str, xml: str, **extra: Any) -> None:
    """Keep what the platform's download API needs (its message id and the callback XML) in
    ``meta["download"]`` of an image / voice / video / file message."""
    if message.kind in MEDIA_KINDS:
        message.meta["download"] = {"msg_id": msg_id, "xml": xml[:20000], **extra}
