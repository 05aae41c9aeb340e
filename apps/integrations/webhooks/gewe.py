"""GeWe callbacks: dedupe key and parser (pure functions over the platform's payloads)."""

from __future__ import annotations

import re
from typing import Any

from django.utils.translation import gettext as _

from apps.integrations.webhooks.events import (
    InboundMessage,
    ParsedEvent,
    WebhookRejected,
    _appmsg,
    _ci,
    _find_text,
    _ignored,
    _inner,
    _media_meta,
    _str_id,
    _system_meta,
    _ts,
    _xml,
    attach_download,
)

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
    attach_download(message, msg_id=_str_id(_ci(data, "MsgId")), xml=content)
    return ParsedEvent("message", event_type, message=message, **base)
