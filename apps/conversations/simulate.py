"""Drive the platform simulators from the product: teach a simulator an account that is already
logged in (after the simulator restarted), and make a simulated customer write to an account.

A simulated message takes the real path: the simulator's ``POST /__sim__/emit`` makes it post
the platform's webhook to the connection's callback URL, the webhook view stores it, a worker
records it and the AI answers through the outbound pipeline (back to the simulator).

Used by ``manage.py simulate_customer``, ``manage.py simulator_sync`` (run by ``run_stack``)
and the admin page "模拟客户消息". Only connections whose base URL points at a simulator work:
a real platform has no ``/__sim__/`` endpoints and is refused with a clear error.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

import requests
from django.db.models import Q
from django.utils.translation import gettext as _

from apps.core.exceptions import ApplicationError, NotFoundError
from apps.integrations.models import PlatformConnection
from apps.orgs.models import Organization
from apps.wechat_accounts.models import Contact, GroupMember, WeChatAccount

TIMEOUT = 10.0
ADDRESS_BOOK_LIMIT = 500


class SimulatorUnavailable(ApplicationError):
    """The connection's simulator is not running or the connection is not a simulator."""


@dataclass(frozen=True)
class SimulatedMessage:
    account: WeChatAccount
    chat_wxid: str  # the customer, or the group
    sender_wxid: str
    text: str
    payload: dict

    @property
    def is_group(self) -> bool:
        return self.chat_wxid != self.sender_wxid


def simulator_root(connection: PlatformConnection) -> str:
    """``scheme://host:port`` of the connection's base URL (control endpoints live there)."""
    parts = urlsplit(connection.base_url)
    return f"{parts.scheme}://{parts.netloc}"


def _control(connection: PlatformConnection, method: str, action: str, body=None) -> dict | list:
    url = f"{simulator_root(connection)}/__sim__/{action}"
    try:
        response = requests.request(method, url, json=body, timeout=TIMEOUT)
    except requests.RequestException as exc:
        raise SimulatorUnavailable(
            _("The simulator at %(url)s is not reachable (%(error)s). Is `make run` running?")
            % {"url": simulator_root(connection), "error": type(exc).__name__}
        ) from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code == 404 and not (isinstance(data, dict) and "error" in data):
        raise SimulatorUnavailable(
            _("The connection %(name)s does not point at a simulator.") % {"name": connection.name}
        )
    if response.status_code >= 400:
        message = data.get("error") if isinstance(data, dict) else response.text[:200]
        raise ApplicationError(
            _("The simulator refused the request: %(message)s") % {"message": message}
        )
    return data if data is not None else {}


def _address_book(account: WeChatAccount) -> dict:
    contacts = Contact.objects.filter(account=account, removed_at__isnull=True).order_by("id")
    friends = [
        {"wxid": c.wxid, "nickname": c.nickname, "remark": c.remark}
        for c in contacts.filter(kind=Contact.Kind.FRIEND)[:ADDRESS_BOOK_LIMIT]
    ]
    groups = []
    for group in contacts.filter(kind=Contact.Kind.GROUP)[:50]:
        members = GroupMember.objects.filter(group=group).exclude(member_wxid=account.wxid)
        groups.append(
            {
                "id": group.wxid,
                "name": group.nickname,
                "members": list(members.values_list("member_wxid", flat=True)[:200]),
            }
        )
    return {"friends": friends, "groups": groups}


def simulator_account_sync(*, account: WeChatAccount, callback: bool = True) -> dict:
    """Make the simulator know ``account`` as a logged-in device with its address book (it
    forgets everything when it restarts), and register the connection's webhook URL there when
    ``callback`` is true. Idempotent."""
    connection = account.connection
    if not account.device_id or not account.wxid:
        raise ApplicationError(
            _("The account %(name)s has never logged in.") % {"name": account.name}
        )
    book = _address_book(account)
    if connection.provider == PlatformConnection.Provider.GEWE:
        body = {"appId": account.device_id, "wxid": account.wxid}
    else:
        body = {"wId": account.device_id, "wcId": account.wxid}
    # Logged in (even if our last check saw it offline because the simulator had restarted).
    online = account.status not in (
        WeChatAccount.Status.PENDING_LOGIN,
        WeChatAccount.Status.LOGGED_OUT,
        WeChatAccount.Status.BANNED,
    )
    body.update(nickname=account.nickname or account.name, online=online, **book)
    device = _control(connection, "POST", "devices", body)
    if callback:
        from apps.integrations import services as integrations

        try:
            integrations.connection_set_callback(org=account.org, connection_id=connection.pk)
        except Exception as exc:  # noqa: BLE001 - reported, the device part worked
            raise ApplicationError(
                _("Registering the webhook URL failed: %(error)s") % {"error": exc}
            ) from None
    return {"device": device, "friends": len(book["friends"]), "groups": len(book["groups"])}


def simulated_accounts(*, org: Organization | int):
    """Accounts of ``org`` that a simulated customer can write to (logged in at least once)."""
    return (
        WeChatAccount.objects.for_org(org)
        .exclude(device_id="")
        .exclude(wxid="")
        .select_related("connection")
        .order_by("name", "id")
    )


def _pick_account(org, account: str | int | None) -> WeChatAccount:
    accounts = simulated_accounts(org=org)
    if account in (None, ""):
        found = accounts.filter(status=WeChatAccount.Status.ONLINE).first() or accounts.first()
    else:
        query = Q(name=str(account)) | Q(wxid=str(account)) | Q(device_id=str(account))
        if str(account).isdigit():
            query |= Q(pk=int(account))
        found = accounts.filter(query).first()
    if found is None:
        raise NotFoundError(_("No logged-in WeChat account found to write to."))
    return found


def _find_contact(account: WeChatAccount, value: str, kind: str) -> Contact | None:
    contacts = Contact.objects.filter(account=account, kind=kind)
    return (
        contacts.filter(wxid=value).first()
        or contacts.filter(remark=value).first()
        or contacts.filter(nickname=value).first()
    )


def default_customer(account: WeChatAccount) -> Contact | None:
    """The friend a simulated message comes from by default: one without a conversation yet
    (so the newcomer sees a new conversation appear), else the first friend."""
    from apps.conversations.models import Conversation

    friends = Contact.objects.filter(account=account, kind=Contact.Kind.FRIEND).order_by("id")
    talked = Conversation.objects.filter(account=account).values("contact_id")
    return friends.exclude(id__in=talked).first() or friends.first()


def customer_message_simulate(
    *,
    org: Organization | int,
    text: str,
    account: str | int | None = None,
    from_wxid: str | None = None,
    group: str | None = None,
    mention: bool = True,
) -> SimulatedMessage:
    """Make a simulated customer write ``text`` to an account of ``org`` through its simulator.

    ``from_wxid``: a wxid, remark or nickname of a friend (default: ``default_customer``);
    ``group``: a group's wxid or name to write in (the sender is then a member; ``mention``
    @-mentions the account so the group reply policy lets the AI answer); ``account``: id,
    name, wxid or device id (default: the first online account).
    """
    text = (text or "").strip()
    if not text:
        raise ApplicationError(_("Invalid data."), fields={"text": [_("Write a message.")]})
    target = _pick_account(org, account)
    sender = None
    if from_wxid:
        sender = _find_contact(target, from_wxid, Contact.Kind.FRIEND)
        sender_wxid = sender.wxid if sender else from_wxid
    room = None
    if group:
        room = _find_contact(target, group, Contact.Kind.GROUP)
        if room is None:
            raise NotFoundError(_("No group %(group)s on this account.") % {"group": group})
        if not from_wxid:
            member = (
                GroupMember.objects.filter(group=room)
                .exclude(member_wxid=target.wxid)
                .order_by("id")
                .first()
            )
            sender_wxid = member.member_wxid if member else "wxid_demo_guest"
    elif not from_wxid:
        sender = default_customer(target)
        sender_wxid = sender.wxid if sender else "wxid_demo_guest"
    simulator_account_sync(account=target, callback=False)
    state = _control(target.connection, "GET", "state")
    if isinstance(state, dict) and not state.get("callback_url"):
        # The simulator restarted since the stack registered its webhook: register it again.
        simulator_account_sync(account=target, callback=True)
    gewe = target.connection.provider == PlatformConnection.Provider.GEWE
    if room is not None:
        body = {
            "kind": "group_text",
            "chatroom_id": room.wxid,
            "sender_wxid": sender_wxid,
            "text": text,
            "to_account": target.device_id,
        }
        if mention and gewe:
            body["at_wxids"] = [target.wxid]
            if not text.startswith("@"):
                body["text"] = f"@{target.nickname or target.name}\u2005{text}"
        elif mention and not text.startswith("@"):
            body["text"] = f"@{target.nickname or target.name} {text}"
    else:
        body = {
            "kind": "text",
            "from_wxid": sender_wxid,
            "text": text,
            "to_account": target.device_id,
        }
    payload = _control(target.connection, "POST", "emit", body)
    return SimulatedMessage(
        account=target,
        chat_wxid=room.wxid if room is not None else sender_wxid,
        sender_wxid=sender_wxid,
        text=body["text"],
        payload=payload if isinstance(payload, dict) else {},
    )
