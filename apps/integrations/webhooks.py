"""Webhook ingestion: the platform callbacks (GeWe, E云管家) into the ``WebhookEvent`` inbox, and
the parsing of a stored event into contacts, conversations and messages.

The view calls ``webhook_receive``: it validates the body, stores one ``WebhookEvent`` (unique on
connection + dedupe key, so a redelivery is a no-op) and enqueues ``webhook_event_process`` after
commit; the platform gets its 200 only after the row is stored. The task calls
``webhook_event_process``: in one transaction it locks the event, parses it (``parse_gewe`` /
``parse_ecloud``, pure functions over the platform's real payload shapes, see
``specs/wechat-platforms.md``) and hands the result to the owning app's service (messages to
``apps.conversations.services.inbound_message_record``; friend requests, contacts and offline
notices to ``apps.wechat_accounts.services``). A crash rolls everything back and leaves the event
``received`` for the retry; a processed event is never processed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.integrations.models import PlatformConnection, WebhookEvent

logger = logging.getLogger(__name__)

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
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    if seconds <= 0:
        return None
    return datetime.fromtimestamp(seconds, tz=UTC)


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


# -- GeWe ------------------------------------------------------------------------------------

GEWE_KINDS = {
    1: "text",
    3: "image",
    34: "voice",
    43: "video",
    47: "emoji",
    42: "other",
    48: "other",
}


def is_ping(payload: Any) -> bool:
    """GeWe's setCallback test (``{"testMsg": ..., "token": ...}``)."""
    return isinstance(payload, dict) and "testMsg" in payload and not _ci(payload, "TypeName")


def gewe_dedupe_key(payload: dict) -> str:
    data = _ci(payload, "Data")
    app_id = _str_id(_ci(payload, "Appid"))
    if isinstance(data, dict):
        new_msg_id = _str_id(_ci(data, "NewMsgId"))
        if new_msg_id:
            return f"msg:{app_id}:{new_msg_id}"
    return ""


def parse_gewe(payload: Any) -> ParsedEvent:
    """Parse a GeWe callback. Raises ``WebhookRejected`` when it is not GeWe's shape."""
    if not isinstance(payload, dict):
        raise WebhookRejected(_("The body must be a JSON object."))
    type_name = _ci(payload, "TypeName")
    if not isinstance(type_name, str) or not type_name:
        raise WebhookRejected(_("Not a GeWe callback: TypeName is missing."))
    device_id = _str_id(_ci(payload, "Appid"))
    account_wxid = _str_id(_ci(payload, "Wxid"))
    data = _ci(payload, "Data")
    base = {"device_id": device_id, "account_wxid": account_wxid}
    if type_name == "Offline":
        return ParsedEvent("offline", "Offline", reason="GeWe Offline callback", **base)
    if data is not None and not isinstance(data, dict):
        raise WebhookRejected(_("Not a GeWe callback: Data must be an object."))
    data = data or {}
    if type_name == "ModContacts":
        wxid = _inner(_ci(data, "UserName"))
        if not wxid:
            return _ignored(type_name, "no UserName", **base)
        return ParsedEvent(
            "contact_update",
            type_name,
            data={
                "wxid": wxid,
                "nickname": _inner(_ci(data, "NickName")) or None,
                "remark": _inner(_ci(data, "Remark")) or None,
                "sex": _ci(data, "Sex") if isinstance(_ci(data, "Sex"), int) else None,
                "avatar_url": _inner(_ci(data, "BigHeadImgUrl")) or None,
            },
            **base,
        )
    if type_name == "DelContacts":
        wxid = _inner(_ci(data, "UserName"))
        if not wxid:
            return _ignored(type_name, "no UserName", **base)
        return ParsedEvent("contact_delete", type_name, data={"wxid": wxid}, **base)
    if type_name != "AddMsg":
        return _ignored(type_name, f"unknown event type {type_name}", **base)

    try:
        msg_type = int(_ci(data, "MsgType"))
    except (TypeError, ValueError):
        raise WebhookRejected(_("Not a GeWe message: MsgType is missing.")) from None
    event_type = f"AddMsg:{msg_type}"
    from_wxid = _inner(_ci(data, "FromUserName"))
    to_wxid = _inner(_ci(data, "ToUserName"))
    content = _inner(_ci(data, "Content"))
    msg_source = _inner(_ci(data, "MsgSource"))
    new_msg_id = _str_id(_ci(data, "NewMsgId")) or _str_id(_ci(data, "MsgId"))
    if not from_wxid:
        raise WebhookRejected(_("Not a GeWe message: FromUserName is missing."))

    if msg_type == 37:  # friend request, from "fmessage"
        root = _xml(content)
        if root is None or not root.get("encryptusername"):
            return _ignored(event_type, "friend request without tickets", **base)
        return ParsedEvent(
            "friend_request",
            event_type,
            data={
                "v3": root.get("encryptusername", ""),
                "v4": root.get("ticket", ""),
                "scene": int(root.get("scene") or 0) if (root.get("scene") or "").isdigit() else 0,
                "from_wxid": root.get("fromusername", ""),
                "nickname": root.get("fromnickname", ""),
                "content": root.get("content", ""),
            },
            **base,
        )
    if msg_type == 51:
        return _ignored(event_type, "status sync (chat opened on the phone)", **base)
    if from_wxid == "weixin" or from_wxid.startswith("gh_") or "<bizmsg" in msg_source:
        return _ignored(event_type, "message from an official account or WeChat itself", **base)

    self_sent = bool(account_wxid) and from_wxid == account_wxid
    chat_wxid = to_wxid if self_sent else from_wxid
    is_group = chat_wxid.endswith("@chatroom")
    message = InboundMessage(
        platform_msg_id=new_msg_id,
        chat_wxid=chat_wxid,
        is_group=is_group,
        self_sent=self_sent,
        created_at=_ts(_ci(data, "CreateTime")),
    )
    if is_group and not self_sent:
        # In groups the real sender is a "wxid:\n" prefix of the content.
        sender, sep, rest = content.partition(":\n")
        if sep and sender and " " not in sender and "<" not in sender:
            message.sender_wxid, content = sender, rest
        push = _inner(_ci(data, "PushContent"))
        if " : " in push:
            message.sender_name = push.split(" : ", 1)[0][:200]
        at_list = re.search(r"<atuserlist>(?:<!\[CDATA\[)?([^<\]]*)", msg_source)
        if at_list:
            message.at_wxids = [w for w in at_list.group(1).split(",") if w.strip()]
        if "在群聊中@了你" in push and account_wxid and account_wxid not in message.at_wxids:
            message.at_wxids.append(account_wxid)

    if msg_type in GEWE_KINDS:
        message.kind = GEWE_KINDS[msg_type]
        if message.kind == "text":
            message.text = content
        else:
            message.meta = _media_meta(message.kind, content)
            if msg_type == 42:
                message.meta["card"] = True
            if msg_type == 48:
                message.meta["location"] = True
    elif msg_type == 49:
        reason = _appmsg(content, message)
        if reason:
            return _ignored(event_type, reason, **base)
    elif msg_type == 10000:
        message.kind, message.text = "system", content[:2000]
        message.meta = _system_meta(content)
    elif msg_type == 10002:
        root = _xml(content)
        sys_type = root.get("type", "") if root is not None else ""
        message.kind = "system"
        message.meta = {"sysmsg": sys_type}
        if sys_type == "revokemsg":
            message.text = _find_text(root, "revokemsg/replacemsg") or "[revoked]"
            message.meta["revoked_msg_id"] = _find_text(root, "revokemsg/newmsgid")
        elif sys_type == "pat":
            message.text = _find_text(root, "pat/template") or "[pat]"
        elif sys_type == "sysmsgtemplate":
            template = _find_text(root, "sysmsgtemplate/content_template/template")
            message.text = template or "[group change]"
            message.meta.update(_system_meta(template) or {"group_event": "changed"})
        elif sys_type == "mmchatroombarannouncememt":
            message.text = _find_text(root, "mmchatroombarannouncememt/content") or "[notice]"
            message.meta["announcement"] = True
        else:
            return _ignored(event_type, f"system message {sys_type or 'unknown'}", **base)
    else:
        return _ignored(event_type, f"unknown message type {msg_type}", **base)
    return ParsedEvent("message", event_type, message=message, **base)


# -- E云管家 ----------------------------------------------------------------------------------

# The last three digits of messageType give the content kind (6xxxx private, 8xxxx group).
ECLOUD_KINDS = {
    1: "text",
    2: "image",
    3: "video",
    4: "voice",
    5: "other",  # name card [I]
    6: "emoji",
    7: "link",
    8: "file",
    10: "link",  # mini program
    14: "text",  # quote
}


def ecloud_dedupe_key(payload: dict) -> str:
    data = payload.get("data")
    if isinstance(data, dict):
        new_msg_id = _str_id(data.get("newMsgId"))
        if new_msg_id:
            return f"msg:{_str_id(payload.get('wcId'))}:{new_msg_id}"
    return ""


def parse_ecloud(payload: Any) -> ParsedEvent:
    """Parse an E云管家 type-2 callback. Raises ``WebhookRejected`` when it is not its shape."""
    if not isinstance(payload, dict):
        raise WebhookRejected(_("The body must be a JSON object."))
    message_type = _str_id(payload.get("messageType"))
    if not message_type.isdigit():
        raise WebhookRejected(_("Not an E云管家 callback: messageType is missing."))
    data = payload.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise WebhookRejected(_("Not an E云管家 callback: data must be an object."))
    account_wxid = _str_id(payload.get("wcId"))
    device_id = _str_id(data.get("wId"))
    base = {"device_id": device_id, "account_wxid": account_wxid}
    code = int(message_type)
    if code == 30000:
        return ParsedEvent("offline", message_type, reason=str(data.get("reason") or ""), **base)
    if code == 30001:
        v1 = _str_id(data.get("v1"))
        if not v1:
            return _ignored(message_type, "friend request without tickets", **base)
        scene = data.get("scene")
        return ParsedEvent(
            "friend_request",
            message_type,
            data={
                "v3": v1,
                "v4": _str_id(data.get("v2")),
                "scene": int(scene) if str(scene or "").isdigit() else 0,
                "from_wxid": _str_id(data.get("fromUser") or data.get("wcId")),
                "nickname": str(data.get("nickName") or data.get("fromNickName") or ""),
                "content": str(data.get("content") or ""),
            },
            **base,
        )
    family, suffix = divmod(code, 10000)
    if family not in (6, 8) or (family == 8 and suffix >= 5000):
        if code in (85008, 85009):
            group = _str_id(data.get("fromGroup") or data.get("chatRoomId") or data.get("group"))
            if not group:
                return _ignored(message_type, "group change without a group", **base)
            text = str(data.get("content") or "") or _("[group change]")
            message = InboundMessage(
                platform_msg_id=_str_id(data.get("newMsgId")),
                chat_wxid=group,
                kind="system",
                text=text[:2000],
                is_group=True,
                meta={
                    "group_event": _system_meta(text).get("group_event", "changed"),
                    "code": code,
                },
                created_at=_ts(data.get("timestamp")),
            )
            return ParsedEvent("message", message_type, message=message, **base)
        return _ignored(message_type, f"unknown messageType {message_type}", **base)
    kind = ECLOUD_KINDS.get(suffix)
    if kind is None:
        return _ignored(message_type, f"unknown messageType {message_type}", **base)
    from_user = _str_id(data.get("fromUser"))
    if not from_user:
        raise WebhookRejected(_("Not an E云管家 message: data.fromUser is missing."))
    self_sent = bool(data.get("self", data.get("sel", False))) or (
        bool(account_wxid) and from_user == account_wxid
    )
    group = _str_id(data.get("fromGroup")) if family == 8 else ""
    if family == 8 and not group:
        raise WebhookRejected(_("Not an E云管家 group message: data.fromGroup is missing."))
    to_user = _str_id(data.get("toUser"))
    chat_wxid = group or (to_user if self_sent else from_user)
    content = str(data.get("content") or "")
    message = InboundMessage(
        platform_msg_id=_str_id(data.get("newMsgId")) or _str_id(data.get("msgId")),
        chat_wxid=chat_wxid,
        kind=kind,
        is_group=bool(group),
        self_sent=self_sent,
        sender_wxid=from_user if group and not self_sent else "",
        created_at=_ts(data.get("timestamp")),
    )
    if group and not self_sent and content.startswith(f"{from_user}:\n"):
        content = content[len(from_user) + 2 :]
    for key in ("atlist", "atList", "atUserList"):
        value = data.get(key)
        if isinstance(value, list):
            message.at_wxids = [str(v) for v in value]
        elif isinstance(value, str) and value:
            message.at_wxids = [v for v in value.split(",") if v]
    if kind == "text" and suffix != 14:
        message.text = content
    elif suffix in (7, 8, 10, 14) and _xml(content) is not None:
        reason = _appmsg(content, message)
        if reason:
            return _ignored(message_type, reason, **base)
        if suffix == 14 and not message.text:
            message.text = str(data.get("title") or "")
    elif suffix == 14:
        message.kind, message.text = "text", str(data.get("title") or content)
    elif kind in ("link", "file"):
        message.text = str(data.get("title") or content)[:2000]
    else:
        message.meta = _media_meta(kind, content)
        if kind == "voice":
            message.meta.update(
                {
                    "length": data.get("length"),
                    "bufId": data.get("bufId"),
                    "voice_length_ms": data.get("voiceLength"),
                }
            )
    return ParsedEvent("message", message_type, message=message, **base)


PARSERS = {Provider.GEWE: parse_gewe, Provider.ECLOUD: parse_ecloud}
DEDUPE_KEYS = {Provider.GEWE: gewe_dedupe_key, Provider.ECLOUD: ecloud_dedupe_key}


def event_type_of(provider: str, payload: dict) -> str:
    if provider == Provider.GEWE:
        type_name = str(_ci(payload, "TypeName") or "")
        data = _ci(payload, "Data")
        if type_name == "AddMsg" and isinstance(data, dict):
            return f"AddMsg:{_ci(data, 'MsgType')}"
        return type_name[:64]
    return _str_id(payload.get("messageType"))[:64]


def dedupe_key_for(provider: str, payload: dict, body: bytes) -> str:
    """The platform's message id, or a hash of the body plus the hour for id-less events
    (ModContacts, Offline...): a burst of redeliveries is dropped, a real repeat later is not."""
    key = DEDUPE_KEYS[provider](payload)
    if key:
        return key[:200]
    bucket = timezone.now().strftime("%Y%m%d%H")
    digest = hashlib.sha256(body).hexdigest()
    return f"hash:{bucket}:{digest}"


# -- receiving (the view) --------------------------------------------------------------------

# secret -> (expires at, connection). A per-process cache of the one lookup the endpoint needs:
# a rotated or disabled secret keeps working in a process for at most
# WEBHOOK_CONNECTION_CACHE_SECONDS (0 disables the cache). Unknown secrets are never cached.
_connections: dict[tuple[str, str], tuple[float, PlatformConnection]] = {}


def connection_for_secret(*, provider: str, secret: str) -> PlatformConnection | None:
    import time

    from apps.integrations.selectors import connection_get_by_webhook_secret_all_orgs

    ttl = settings.WEBHOOK_CONNECTION_CACHE_SECONDS
    key = (provider, secret)
    now = time.monotonic()
    if ttl > 0:
        cached = _connections.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
    connection = connection_get_by_webhook_secret_all_orgs(provider=provider, secret=secret)
    if connection is not None and ttl > 0:
        if len(_connections) > 10000:
            _connections.clear()
        _connections[key] = (now + ttl, connection)
    return connection


@dataclass(frozen=True)
class ReceiveResult:
    status: int  # HTTP status to answer
    body: dict
    event_id: int | None = None
    duplicate: bool = False


def _reject(connection: PlatformConnection, body: bytes, message: str) -> ReceiveResult:
    raw = body.decode("utf-8", errors="replace")[: settings.WEBHOOK_REJECTED_BODY_CHARS]
    digest = hashlib.sha256(body).hexdigest()
    try:
        with transaction.atomic():
            event, _created = WebhookEvent.objects.get_or_create(
                connection=connection,
                dedupe_key=f"rejected:{digest}",
                defaults={
                    "org_id": connection.org_id,
                    "provider": connection.provider,
                    "raw_body": raw,
                    "status": WebhookEvent.Status.REJECTED,
                    "error": message[:500],
                },
            )
    except IntegrityError:
        event = None
    return ReceiveResult(
        400,
        {"error": {"code": "invalid_webhook", "message": message}},
        event_id=getattr(event, "pk", None),
    )


def webhook_receive(*, connection: PlatformConnection, body: bytes) -> ReceiveResult:
    """Store one callback body for ``connection`` and enqueue its processing after commit.

    Answers 200 for a stored event, a duplicate (already stored) or a ping; 400 (stored as
    rejected, body truncated) when the body is not JSON or not the platform's shape.
    """
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _reject(connection, body, _("The body is not valid JSON."))
    provider = connection.provider
    if provider == Provider.GEWE and is_ping(payload):
        return ReceiveResult(200, {"ok": True, "ping": True})
    if not isinstance(payload, dict):
        return _reject(connection, body, _("The body must be a JSON object."))
    # Shape check only (cheap): full parsing happens in the worker.
    if provider == Provider.GEWE:
        if not isinstance(_ci(payload, "TypeName"), str):
            return _reject(connection, body, _("Not a GeWe callback: TypeName is missing."))
    elif not _str_id(payload.get("messageType")).isdigit():
        if not payload:
            return ReceiveResult(200, {"ok": True, "ping": True})
        return _reject(connection, body, _("Not an E云管家 callback: messageType is missing."))
    dedupe_key = dedupe_key_for(provider, payload, body)
    event_id = _insert_event(
        connection=connection,
        event_type=event_type_of(provider, payload),
        dedupe_key=dedupe_key,
        payload_json=json.dumps(payload, ensure_ascii=False),
    )
    if event_id is None:
        return ReceiveResult(200, {"ok": True, "duplicate": True}, duplicate=True)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: enqueue_process(event_id))
    else:
        enqueue_process(event_id)
    return ReceiveResult(200, {"ok": True}, event_id=event_id)


_INSERT_SQL = """
INSERT INTO {table} (org_id, connection_id, provider, event_type, dedupe_key, payload,
                     raw_body, status, attempts, error, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, {json}, '', 'received', 0, '', %s, %s)
ON CONFLICT (connection_id, dedupe_key) DO NOTHING
RETURNING id
"""


def _insert_event(
    *, connection: PlatformConnection, event_type: str, dedupe_key: str, payload_json: str
) -> int | None:
    """Store the event in one statement (one round trip, committed at once in autocommit):
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``; None when it is a duplicate. The unique
    (connection, dedupe key) constraint decides, whatever the concurrency."""
    from django.db import connection as db

    now = timezone.now()
    sql = _INSERT_SQL.format(
        table=WebhookEvent._meta.db_table,
        json="%s::jsonb" if db.vendor == "postgresql" else "%s",
    )
    with db.cursor() as cursor:
        cursor.execute(
            sql,
            [
                connection.org_id,
                connection.pk,
                connection.provider,
                event_type[:64],
                dedupe_key[:200],
                payload_json,
                now,
                now,
            ],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def enqueue_process(event_id: int, countdown: float = 0.0) -> None:
    from apps.integrations.tasks import webhook_event_process as process_task

    try:
        process_task.apply_async(kwargs={"event_id": event_id}, countdown=countdown)
    except Exception:  # noqa: BLE001 - the row is stored; the recovery task enqueues it again
        logger.exception("webhook: enqueueing event %s failed", event_id)


# -- processing (the task) -------------------------------------------------------------------


def _finish(event: WebhookEvent, status: str, error: str = "") -> None:
    event.status = status
    event.error = error[:500]
    event.processed_at = timezone.now()
    event.save(update_fields=["status", "error", "processed_at", "attempts", "updated_at"])


def webhook_event_process(*, event_id: int) -> str:
    """Turn one stored event into rows (idempotent; see the module docstring). Returns the
    event's final status, or "skipped" when another worker has it or it is already done.

    Order: events of one connection are applied in arrival order. Before its own event a worker
    applies the connection's older events still waiting, taking their row locks in id order
    (blocking, so it waits for a worker busy with an older one; the lock order rules out
    deadlocks). A quick customer who writes twice is therefore never recorded out of order.
    """
    try:
        with transaction.atomic():
            event = (
                WebhookEvent.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("connection", "org")
                .filter(pk=event_id)
                .first()
            )
            if event is None or event.status != WebhookEvent.Status.RECEIVED:
                return "skipped"
            for older in _older_waiting(event):
                _process_one(older, isolated=True)
            return _process_one(event, isolated=False)
    except Exception as exc:
        logger.exception("webhook: processing event %s failed", event_id)
        # Count the attempt outside the rolled-back transaction; give up after the maximum.
        _count_failure(event_id, exc)
        raise


def _older_waiting(event: WebhookEvent) -> list[WebhookEvent]:
    from datetime import timedelta

    window = timezone.now() - timedelta(seconds=max(settings.WEBHOOK_STUCK_SECONDS, 60) * 10)
    return list(
        WebhookEvent.objects.select_for_update(of=("self",))
        .select_related("connection", "org")
        .filter(
            connection_id=event.connection_id,
            status=WebhookEvent.Status.RECEIVED,
            id__lt=event.pk,
            created_at__gte=window,
            attempts__lt=settings.WEBHOOK_MAX_ATTEMPTS,
        )
        .order_by("id")[:100]
    )


def _process_one(event: WebhookEvent, *, isolated: bool) -> str:
    event.attempts += 1
    if not isolated:
        status, error = _apply(event)
        _finish(event, status, error)
        return status
    try:
        with transaction.atomic():
            status, error = _apply(event)
            _finish(event, status, error)
        return status
    except Exception as exc:  # noqa: BLE001 - an older event must not block the newer one
        logger.exception("webhook: processing older event %s failed", event.pk)
        failed = event.attempts >= settings.WEBHOOK_MAX_ATTEMPTS
        WebhookEvent.objects.filter(pk=event.pk).update(
            attempts=event.attempts,
            status=WebhookEvent.Status.FAILED if failed else WebhookEvent.Status.RECEIVED,
            error=f"{type(exc).__name__}: {exc}"[:500],
            updated_at=timezone.now(),
        )
        return "failed"


def _count_failure(event_id: int, exc: Exception) -> None:
    event = WebhookEvent.objects.filter(pk=event_id).first()
    if event is None or event.status != WebhookEvent.Status.RECEIVED:
        return
    attempts = event.attempts + 1
    status = (
        WebhookEvent.Status.FAILED
        if attempts >= settings.WEBHOOK_MAX_ATTEMPTS
        else WebhookEvent.Status.RECEIVED
    )
    WebhookEvent.objects.filter(pk=event_id, status=WebhookEvent.Status.RECEIVED).update(
        attempts=attempts,
        status=status,
        error=f"{type(exc).__name__}: {exc}"[:500],
        updated_at=timezone.now(),
    )


def _apply(event: WebhookEvent) -> tuple[str, str]:
    from apps.wechat_accounts import services as wechat

    parser = PARSERS[event.provider]
    try:
        parsed = parser(event.payload)
    except WebhookRejected as exc:
        return WebhookEvent.Status.REJECTED, str(exc)
    if parsed.kind == "ignored":
        return WebhookEvent.Status.IGNORED, f"{parsed.event_type}: {parsed.reason}"
    account = wechat.account_find(
        connection=event.connection,
        device_id=parsed.device_id or None,
        wxid=parsed.account_wxid or None,
    )
    if account is None:
        return WebhookEvent.Status.IGNORED, "no WeChat account for this device / wxid"
    org = event.org
    if parsed.kind == "offline":
        from apps.core.exceptions import ConflictError

        try:
            wechat.account_status_change(
                org=org,
                account_id=account.pk,
                to_status=account.Status.OFFLINE,
                reason=(parsed.reason or "offline callback")[:300],
            )
        except ConflictError as exc:
            return WebhookEvent.Status.IGNORED, str(exc)
        return WebhookEvent.Status.PROCESSED, ""
    if parsed.kind == "friend_request":
        wechat.friend_request_record(org=org, account=account, **parsed.data)
        return WebhookEvent.Status.PROCESSED, ""
    if parsed.kind == "contact_update":
        data = {k: v for k, v in parsed.data.items() if v is not None}
        wechat.contact_upsert(org=org, account=account, **data)
        return WebhookEvent.Status.PROCESSED, ""
    if parsed.kind == "contact_delete":
        wechat.contact_remove(org=org, account=account, wxid=parsed.data["wxid"])
        return WebhookEvent.Status.PROCESSED, ""
    from apps.conversations.services import inbound_message_record

    result = inbound_message_record(org=org, account=account, inbound=parsed.message)
    return result.status, result.reason


def webhook_events_requeue_stuck(*, now: datetime | None = None, limit: int = 1000) -> int:
    """Enqueue again the events still ``received`` after ``WEBHOOK_STUCK_SECONDS`` (a lost
    broker task or a killed worker). Processing is idempotent, so a duplicate is harmless."""
    from datetime import timedelta

    now = now or timezone.now()
    stale = now - timedelta(seconds=settings.WEBHOOK_STUCK_SECONDS)
    ids = list(
        WebhookEvent.objects.filter(status=WebhookEvent.Status.RECEIVED, updated_at__lt=stale)
        .order_by("id")
        .values_list("id", flat=True)[:limit]
    )
    for event_id in ids:
        WebhookEvent.objects.filter(pk=event_id, status=WebhookEvent.Status.RECEIVED).update(
            updated_at=now
        )
        enqueue_process(event_id)
    return len(ids)
