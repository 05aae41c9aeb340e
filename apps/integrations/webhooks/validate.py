"""Hostile-input guards of the webhook endpoint: a body is parsed with limits and the fields the
core loop acts on are type-checked against the shapes in ``specs/wechat-platforms.md``.

``load_body`` turns the bytes into JSON or raises ``WebhookRejected``: not UTF-8, nested deeper
than ``WEBHOOK_MAX_JSON_DEPTH``, ``NaN``/``Infinity`` (or a number that overflows to it), a NUL
character or a lone surrogate in any string (PostgreSQL cannot store either). Every such body
answered 500 before, and the platforms retried it.

``check_fields`` refuses an event whose acted-on fields have the wrong type: a list in
``FromUserName`` became a contact named ``"[1, 2]"`` that the AI answered; E云's
``"self": "false"`` (a string) counted as self-sent and paused the AI; a garbage ``NewMsgId``
became a dedupe key that swallowed later messages. Over-long or out-of-range *values* of the
right type are not refused here: the parsers keep the message and drop or cut the one field
(``"platform data is data"``).

``storable`` makes any text safe for a text column (the rejected body is kept for inspection).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _

from apps.integrations.webhooks.events import WebhookRejected, _ci

MAX_ID = 2**64 - 1  # WeChat message ids are unsigned 64-bit
_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` without the characters a database text column refuses (NUL, lone surrogates)."""
    text = text.replace("\x00", "\ufffd")
    return _SURROGATE.sub("\ufffd", text)


def _refuse_constant(name: str):
    raise WebhookRejected(
        _("The body contains %(name)s, which is not a JSON number.") % {"name": name}
    )


def load_body(body: bytes) -> Any:
    """JSON of ``body`` within the limits above, or ``WebhookRejected`` with the reason."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookRejected(_("The body is not UTF-8 text.")) from None
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise WebhookRejected(_("The body is nested too deeply.")) from None
    except ValueError:
        raise WebhookRejected(_("The body is not valid JSON.")) from None
    _check_tree(payload, settings.WEBHOOK_MAX_JSON_DEPTH)
    return payload


def _check_tree(payload: Any, max_depth: int) -> None:
    stack = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth > max_depth:
                raise WebhookRejected(_("The body is nested too deeply."))
            for key, item in value.items():
                _check_text(key)
                stack.append((item, depth + 1))
        elif isinstance(value, list):
            if depth > max_depth:
                raise WebhookRejected(_("The body is nested too deeply."))
            stack.extend((item, depth + 1) for item in value)
        elif isinstance(value, str):
            _check_text(value)
        elif isinstance(value, float) and not math.isfinite(value):
            raise WebhookRejected(_("The body contains a number out of range."))


def _check_text(value: str) -> None:
    if "\x00" in value:
        raise WebhookRejected(_("The body contains a NUL character."))
    if _SURROGATE.search(value):
        raise WebhookRejected(_("The body contains an unpaired surrogate (not valid Unicode)."))


# -- field types -------------------------------------------------------------------------------


def _wrong(field: str, expected: str) -> WebhookRejected:
    return WebhookRejected(
        _("Field %(field)s has the wrong type (expected %(expected)s).")
        % {"field": field, "expected": expected}
    )


def _check_id(value: Any, field: str) -> None:
    """A message id: a non-negative integer below 2^64, as a JSON number or a digit string."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _wrong(field, _("an integer id"))
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit() or len(value) > 20:
            raise _wrong(field, _("an integer id"))
        value = int(value)
    if not 0 <= value <= MAX_ID:
        raise WebhookRejected(_("Field %(field)s is out of range.") % {"field": field})


def _check_str(value: Any, field: str, *, wrapped: bool = False) -> None:
    """A string (GeWe also wraps strings as ``{"string": ...}``), or absent."""
    if value is None or isinstance(value, str):
        return
    if wrapped and isinstance(value, dict):
        inner = value.get("string")
        if inner is None or isinstance(inner, str):
            return
    raise _wrong(field, _("a string"))


def _check_int(value: Any, field: str) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        raise _wrong(field, _("an integer"))
    if isinstance(value, int) or (isinstance(value, str) and value.strip().lstrip("-").isdigit()):
        return
    raise _wrong(field, _("an integer"))


def check_gewe(payload: dict) -> None:
    for name in ("Appid", "Wxid"):
        _check_str(_ci(payload, name), name)
    data = _ci(payload, "Data")
    if not isinstance(data, dict):
        return
    type_name = _ci(payload, "TypeName")
    if type_name in ("ModContacts", "DelContacts"):
        _check_str(_ci(data, "UserName"), "Data.UserName", wrapped=True)
        return
    if type_name != "AddMsg":
        return
    for name in ("FromUserName", "ToUserName", "Content", "MsgSource", "PushContent"):
        _check_str(_ci(data, name), f"Data.{name}", wrapped=True)
    _check_int(_ci(data, "MsgType"), "Data.MsgType")
    for name in ("NewMsgId", "MsgId"):
        _check_id(_ci(data, name), f"Data.{name}")


def check_ecloud(payload: dict) -> None:
    _check_str(payload.get("wcId"), "wcId")
    data = payload.get("data")
    if not isinstance(data, dict):
        return
    for name in ("fromUser", "toUser", "fromGroup", "content"):
        _check_str(data.get(name), f"data.{name}")
    for name in ("self", "sel"):
        value = data.get(name)
        if value is not None and not isinstance(value, bool):
            raise _wrong(f"data.{name}", _("true or false"))
    for name in ("newMsgId", "msgId"):
        _check_id(data.get(name), f"data.{name}")
    for name in ("atlist", "atList", "atUserList"):
        value = data.get(name)
        if isinstance(value, list):
            if not all(isinstance(item, str) for item in value):
                raise _wrong(f"data.{name}", _("a list of wxids"))
        else:
            _check_str(value, f"data.{name}")


def check_fields(provider: str, payload: dict) -> None:
    """Raise ``WebhookRejected`` when a field the core loop acts on has the wrong type."""
    from apps.integrations.webhooks.events import Provider

    if provider == Provider.GEWE:
        check_gewe(payload)
    elif provider == Provider.ECLOUD:
        check_ecloud(payload)


# -- values of the right type that do not fit ---------------------------------------------------

WXID_MAX = 128  # Contact.wxid, Message.sender_wxid
NAME_MAX = 200
URL_MAX = 1000


def fit_message(message) -> None:
    """Keep a message whose values do not fit the columns: cut or drop the one field and say so
    in ``meta["field_notes"]`` (a 200-character wxid once failed the event five times and lost
    the customer's message)."""
    notes = []
    if len(message.chat_wxid) > WXID_MAX:
        notes.append(f"chat_wxid cut from {len(message.chat_wxid)} characters")
        message.chat_wxid = message.chat_wxid[:WXID_MAX]
    if len(message.sender_wxid) > WXID_MAX:
        notes.append(f"sender_wxid of {len(message.sender_wxid)} characters dropped")
        message.sender_wxid = ""
    if len(message.sender_name) > NAME_MAX:
        notes.append(f"sender_name cut from {len(message.sender_name)} characters")
        message.sender_name = message.sender_name[:NAME_MAX]
    kept = [w for w in message.at_wxids if isinstance(w, str) and len(w) <= WXID_MAX]
    if len(kept) != len(message.at_wxids):
        notes.append(f"{len(message.at_wxids) - len(kept)} @-mention id(s) dropped")
        message.at_wxids = kept
    if len(message.media_url) > URL_MAX:
        notes.append(f"media_url of {len(message.media_url)} characters dropped")
        message.media_url = ""
    if len(message.platform_msg_id) > 64:
        notes.append("platform message id dropped (over 64 characters)")
        message.platform_msg_id = ""
    if notes:
        message.meta = {**(message.meta or {}), "field_notes": notes}
