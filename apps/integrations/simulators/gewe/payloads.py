"""GeWe callback payload builders, in the platform's exact shape (no running simulator needed)."""

from __future__ import annotations

import time
from typing import Any

MENTION_END = "\u2005"  # GeWe ends each @mention with a four-per-em space

# Realistic id ranges: MsgId is int32, NewMsgId and Moments ids are int64 above 2^53.
_FIRST_MSG_ID = 1040356095
_FIRST_NEW_MSG_ID = 7773749793478223190
_FIRST_SNS_ID = 7324581064712345678


# -- payload builders -----------------------------------------------------------------------


def build_ping(token: str) -> dict:
    return {"testMsg": "验证回调地址是否可用", "token": token}


def build_add_msg(
    *,
    app_id: str,
    account_wxid: str,
    from_wxid: str,
    to_wxid: str,
    msg_type: int,
    content: str,
    msg_id: int,
    new_msg_id: int,
    create_time: int | None = None,
    msg_source: str = "<msgsource/>",
    push_content: str | None = None,
    img_buf: str | None = None,
) -> dict:
    """An ``AddMsg`` callback (every kind of chat message)."""
    data: dict[str, Any] = {
        "MsgId": msg_id,
        "FromUserName": {"string": from_wxid},
        "ToUserName": {"string": to_wxid},
        "MsgType": msg_type,
        "Content": {"string": content},
        "Status": 3,
        "ImgStatus": 2 if msg_type == 3 else 1,
        "ImgBuf": {"iLen": len(img_buf or ""), **({"buffer": img_buf} if img_buf else {})},
        "CreateTime": int(create_time or time.time()),
        "MsgSource": msg_source,
        "NewMsgId": new_msg_id,
        "MsgSeq": msg_id - 400000000,
    }
    if push_content is not None:
        data["PushContent"] = push_content
    return {"TypeName": "AddMsg", "Appid": app_id, "Wxid": account_wxid, "Data": data}


def _at_source(at_wxids: list[str]) -> str:
    if not at_wxids:
        return "<msgsource><silence>0</silence><membercount>3</membercount></msgsource>"
    ids = ",".join(at_wxids)
    return (
        f"<msgsource><atuserlist><![CDATA[,{ids}]]></atuserlist>"
        "<membercount>3</membercount></msgsource>"
    )


def _group_prefix(sender: str | None, content: str) -> str:
    # In groups the sender is only visible as a "wxid:\n" prefix of the content.
    return f"{sender}:\n{content}" if sender else content


def image_xml(md5: str = "0f5b7a3b6c1d2e3f4a5b6c7d8e9f0a1b", length: int = 40960) -> str:
    return (
        '<?xml version="1.0"?>\n<msg><img aeskey="5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d" '
        'encryver="1" cdnthumbaeskey="5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d" '
        'cdnthumburl="3057020100044b30490201000204" cdnthumblength="3072" cdnthumbheight="120" '
        'cdnthumbwidth="90" cdnmidheight="0" cdnmidwidth="0" cdnhdheight="0" cdnhdwidth="0" '
        f'cdnmidimgurl="3057020100044b30490201000204" length="{length}" md5="{md5}" /></msg>'
    )


def voice_xml(length_ms: int = 2540) -> str:
    return (
        f'<msg><voicemsg endflag="1" cancelflag="0" forwardflag="0" voiceformat="4" '
        f'voicelength="{length_ms}" length="4242" bufid="0" aeskey="a1b2c3d4e5f6" '
        f'voiceurl="3052020100044b3049" voicemd5="" clientmsgid="49c1a2b3" '
        f'fromusername="wxid_x" /></msg>'
    )


def appmsg_xml(
    app_type: int,
    title: str,
    *,
    des: str = "",
    url: str = "",
    file_ext: str = "",
    total_len: int = 0,
) -> str:
    attach = ""
    if app_type in (6, 74):
        attach = (
            f"<appattach><totallen>{total_len}</totallen><fileext>{file_ext}</fileext></appattach>"
        )
    return (
        '<?xml version="1.0"?>\n<msg><appmsg appid="" sdkver="0">'
        f"<title>{title}</title><des>{des}</des><type>{app_type}</type><url>{url}</url>"
        f"{attach}</appmsg><fromusername>wxid_x</fromusername></msg>"
    )


def friend_request_xml(
    *, from_wxid: str, nickname: str, v3: str, v4: str, scene: int, content: str
) -> str:
    return (
        f'<msg fromusername="{from_wxid}" encryptusername="{v3}" fromnickname="{nickname}" '
        f'content="{content}" fullpy="" shortpy="" imagestatus="3" scene="{scene}" '
        f'country="CN" province="Guangdong" city="Shenzhen" sign="" percard="1" sex="1" '
        f'alias="" weibo="" albumflag="0" albumstyle="0" albumbgimgid="" snsflag="1" '
        f'ticket="{v4}" opcode="2" googlecontact="" qrticket="" chatroomusername="" '
        f'sourceusername="" sourcenickname=""><brandlist count="0" ver="0"></brandlist></msg>'
    )


def build_offline(*, app_id: str, account_wxid: str) -> dict:
    return {"TypeName": "Offline", "Appid": app_id, "Wxid": account_wxid}


def build_mod_contacts(*, app_id: str, account_wxid: str, wxid: str, nickname: str) -> dict:
    return {
        "TypeName": "ModContacts",
        "Appid": app_id,
        "Wxid": account_wxid,
        "Data": {"UserName": {"string": wxid}, "NickName": {"string": nickname}, "Sex": 1},
    }


def build_del_contacts(*, app_id: str, account_wxid: str, wxid: str) -> dict:
    return {
        "TypeName": "DelContacts",
        "Appid": app_id,
        "Wxid": account_wxid,
        "Data": {"UserName": {"string": wxid}, "DeleteContactScen": 0},
    }
