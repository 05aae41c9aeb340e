"""E云管家 callbacks: dedupe key and parser (pure functions over the platform's payloads)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _

from apps.integrations.webhooks.events import (
    InboundMessage,
    ParsedEvent,
    WebhookRejected,
    _appmsg,
    _ignored,
    _media_meta,
    _str_id,
    _system_meta,
    _ts,
    _xml,
    attach_download,
)

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
    attach_download(
        message,
        msg_id=_str_id(data.get("msgId")),
        xml=content,
        length=data.get("length"),
        bufId=data.get("bufId"),
        from_user=from_user,
    )
    return ParsedEvent("message", message_type, message=message, **base)
