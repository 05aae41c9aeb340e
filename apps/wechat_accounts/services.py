"""Writes of the wechat_accounts app: accounts and their state machine, QR login, online
checks, contacts (upsert, sync, CSV), tags, group members, friend requests and Moments.

The outbound pipeline lives in ``outbound.py``; its entry point ``send`` is re-exported here.

Functions other apps call:

- ``send(*, org, account, to_wxid, kind, text, url, ...) -> Message`` (queued; see outbound.py)
- ``account_status_change(*, org, account_id, to_status, reason) -> WeChatAccount``
- ``account_find(*, connection, device_id=None, wxid=None) -> WeChatAccount | None``
- ``contact_upsert(*, org, account, wxid, ...) -> Contact`` / ``contact_remove(...)``
- ``friend_request_record(*, org, account, v3, v4, scene, from_wxid, nickname, content)``

Platform calls never run inside a transaction (the call log commits per attempt); each
function does its network call first and then one atomic write.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from apps.core import csv_export, events, realtime
from apps.core.exceptions import ApplicationError, ConflictError, NotFoundError
from apps.core.redis import get_redis, redis_key
from apps.integrations.clients import errors as client_errors
from apps.integrations.models import PlatformConnection
from apps.orgs.models import Organization
from apps.wechat_accounts.models import (
    AccountStatusEvent,
    Contact,
    FriendRequest,
    GroupMember,
    MomentPost,
    MomentTimelineItem,
    Tag,
    WeChatAccount,
)
from apps.wechat_accounts.outbound import (  # noqa: F401 - re-exported public API
    outbound_kick_account,
    outbound_recover,
    send,
    send_limits,
)
from apps.wechat_accounts.platform import client_for_account

logger = logging.getLogger(__name__)

Status = WeChatAccount.Status
OFFLINE_FROM_SEND = "send_failed_offline"


def _validation_to_app_error(exc: ValidationError) -> ApplicationError:
    fields = getattr(exc, "message_dict", None) or {"non_field_errors": exc.messages}
    return ApplicationError(_("Invalid data."), fields=fields)


def _save(obj, update_fields: list[str] | None = None) -> None:
    try:
        obj.full_clean(validate_constraints=False)
    except ValidationError as exc:
        raise _validation_to_app_error(exc) from exc
    if update_fields is not None:
        obj.save(update_fields=[*update_fields, "updated_at"])
    else:
        obj.save()


def _account_for_update(*, org: Organization | int, account_id: int) -> WeChatAccount:
    org_id = getattr(org, "pk", org)
    account = (
        WeChatAccount.objects.select_for_update()
        .select_related("org", "connection")
        .filter(org_id=org_id, pk=account_id)
        .first()
    )
    if account is None:
        raise NotFoundError(_("WeChat account not found."))
    return account


def _account_get(*, org: Organization | int, account_id: int) -> WeChatAccount:
    org_id = getattr(org, "pk", org)
    account = (
        WeChatAccount.objects.select_related("org", "connection")
        .filter(org_id=org_id, pk=account_id)
        .first()
    )
    if account is None:
        raise NotFoundError(_("WeChat account not found."))
    return account


def _platform_error(exc: client_errors.IntegrationError) -> ApplicationError:
    error = ApplicationError(
        _("The WeChat platform refused: %(detail)s") % {"detail": exc.message[:200]},
        code="platform_error",
    )
    error.status_code = 502 if isinstance(exc, client_errors.Unavailable) else 400
    return error


def _push_account(account: WeChatAccount, event_type: str = "account_status_update") -> None:
    realtime.push_on_commit(
        event_type,
        {
            "account_id": account.pk,
            "status": account.status,
            "login_state": account.login_state,
            "last_seen_at": account.last_seen_at,
            "contacts_sync": {
                "state": account.contacts_sync_state,
                "done": account.contacts_sync_done,
                "total": account.contacts_sync_total,
            },
        },
        groups=[realtime.group_for_org(account.org_id)],
    )


# -- accounts ------------------------------------------------------------------------------

ACCOUNT_EDITABLE = {
    "name",
    "owner",
    "send_limit_per_minute",
    "send_limit_per_day",
    "quiet_hours_start",
    "quiet_hours_end",
    "delay_min_seconds",
    "delay_max_seconds",
    "default_ai_app",
    "private_reply_policy",
    "group_reply_policy",
    "reply_keywords",
    "auto_accept_friends",
    "welcome_message",
}


def _check_account_refs(org: Organization, fields: dict) -> None:
    from apps.orgs.models import Membership

    ai_app = fields.get("default_ai_app")
    if ai_app is not None and ai_app.org_id != org.pk:
        raise ApplicationError(
            _("Invalid data."), fields={"default_ai_app": [_("Unknown AI app.")]}
        )
    owner = fields.get("owner")
    if owner is not None and not Membership.objects.filter(org=org, user=owner).exists():
        raise ApplicationError(
            _("Invalid data."), fields={"owner": [_("The owner must be a member.")]}
        )


@transaction.atomic
def account_create(
    *, org: Organization, connection: PlatformConnection, name: str, **fields: Any
) -> WeChatAccount:
    """A new account in ``pending_login``; log it in with ``account_login_start``."""
    if connection.org_id != org.pk:
        raise ApplicationError(
            _("Invalid data."), fields={"connection": [_("Unknown connection.")]}
        )
    unknown = set(fields) - ACCOUNT_EDITABLE
    if unknown:
        raise ApplicationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    _check_account_refs(org, fields)
    if WeChatAccount.objects.filter(org=org, name=name).exists():
        raise ApplicationError(
            _("Invalid data."), fields={"name": [_("An account with this name exists.")]}
        )
    account = WeChatAccount(org=org, connection=connection, name=name, **fields)
    _save(account)
    return account


@transaction.atomic
def account_update(*, org: Organization, account_id: int, **fields: Any) -> WeChatAccount:
    account = _account_for_update(org=org, account_id=account_id)
    unknown = set(fields) - ACCOUNT_EDITABLE
    if unknown:
        raise ApplicationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    _check_account_refs(org, fields)
    if "name" in fields and (
        WeChatAccount.objects.filter(org=org, name=fields["name"]).exclude(pk=account.pk).exists()
    ):
        raise ApplicationError(
            _("Invalid data."), fields={"name": [_("An account with this name exists.")]}
        )
    for name, value in fields.items():
        setattr(account, name, value)
    _save(account, list(fields))
    return account


@transaction.atomic
def account_delete(*, org: Organization, account_id: int) -> None:
    account = _account_for_update(org=org, account_id=account_id)
    if account.status == Status.ONLINE:
        raise ConflictError(_("Log the account out before deleting it."))
    account.delete()


@transaction.atomic
def account_status_change(
    *, org: Organization | int, account_id: int, to_status: str, reason: str = ""
) -> WeChatAccount:
    """Move an account along its state machine; illegal moves raise ``ConflictError`` (409).

    A move to the current status is a no-op (only ``last_seen_at`` is refreshed when online).
    Each move writes an ``AccountStatusEvent``, pushes ``account_status_update`` to the org and,
    after commit, sends ``apps.core.events.account_status_changed`` (the notification code
    tells the owner and managers about offline / risk_controlled / banned). Going online
    enqueues the account's waiting outbound messages.
    """
    account = _account_for_update(org=org, account_id=account_id)
    now = timezone.now()
    if to_status not in Status.values:
        raise ApplicationError(_("Unknown status."), fields={"status": [_("Unknown status.")]})
    if account.status == to_status:
        if to_status == Status.ONLINE:
            account.last_seen_at = now
            account.save(update_fields=["last_seen_at", "updated_at"])
        return account
    from_status = account.status
    if not WeChatAccount.can_transition(from_status, to_status):
        raise ConflictError(
            _("An account cannot go from %(a)s to %(b)s.") % {"a": from_status, "b": to_status},
            code="illegal_transition",
        )
    account.status = to_status
    account.status_reason = (reason or "")[:300]
    account.status_changed_at = now
    update = ["status", "status_reason", "status_changed_at"]
    if to_status == Status.ONLINE:
        account.last_seen_at = now
        update.append("last_seen_at")
    _save(account, update)
    AccountStatusEvent.objects.create(
        org_id=account.org_id,
        account=account,
        from_status=from_status,
        to_status=to_status,
        reason=(reason or "")[:300],
    )
    _push_account(account)
    org_id, acct_id = account.org_id, account.pk

    def after_commit() -> None:
        events.account_status_changed.send(
            sender=WeChatAccount,
            org_id=org_id,
            account_id=acct_id,
            from_status=from_status,
            to_status=to_status,
            reason=reason,
        )
        if to_status == Status.ONLINE:
            outbound_kick_account(org_id=org_id, account_id=acct_id)

    transaction.on_commit(after_commit)
    return account


def account_find(
    *, connection: PlatformConnection, device_id: str | None = None, wxid: str | None = None
) -> WeChatAccount | None:
    """The account of a webhook event: by the platform device id (GeWe ``Appid`` / E云 ``wId``)
    and/or the account's wxid, within ``connection`` (and therefore its organisation). E云
    changes ``wId`` on every login, so a wxid match wins when both are given."""
    qs = WeChatAccount.objects.select_related("org", "connection").filter(
        org_id=connection.org_id, connection=connection
    )
    if wxid:
        found = qs.filter(wxid=wxid).first()
        if found is not None:
            return found
    if device_id:
        return qs.filter(device_id=device_id).first()
    return None


def account_mark_offline_from_send(*, org_id: int, account_id: int, reason: str) -> None:
    """A send failed with the platform's "offline" error: offline, whatever checkOnline says."""
    try:
        account_status_change(
            org=org_id,
            account_id=account_id,
            to_status=Status.OFFLINE,
            reason=f"{OFFLINE_FROM_SEND}: {reason}"[:300],
        )
    except ConflictError:
        pass  # already in a state that cannot go offline (logged out, banned)


# -- QR login ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginInfo:
    qr_image: str
    uuid: str
    expires_in: int | None
    device_id: str


def _release(lock) -> None:
    try:
        lock.release()
    except Exception:  # noqa: BLE001 - the lock expired; nothing to give back
        logger.debug("lock %s already released", lock.name)


def _login_lock(account_id: int):
    return get_redis().lock(
        redis_key("wechat", "login", account_id), timeout=30, blocking_timeout=10
    )


def account_login_start(*, org: Organization, account_id: int) -> LoginInfo:
    """Get a login QR (reusing the account's device id: never a second device for one account)
    and start the background polling task."""
    account = _account_get(org=org, account_id=account_id)
    if account.status == Status.ONLINE:
        raise ConflictError(_("The account is already online."))
    if account.status == Status.BANNED:
        raise ConflictError(_("The account is banned."))
    client = client_for_account(account)
    try:
        qr = client.get_login_qr(account.device_id or None, wxid=account.wxid or None)
    except client_errors.IntegrationError as exc:
        raise _platform_error(exc) from exc
    _login_store(org=org, account_id=account_id, qr=qr, started=True)
    return LoginInfo(
        qr_image=qr.qr_image or "",
        uuid=qr.uuid or "",
        expires_in=qr.expires_in,
        device_id=qr.device_id,
    )


@transaction.atomic
def _login_store(*, org: Organization | int, account_id: int, qr: Any, started: bool) -> None:
    account = _account_for_update(org=org, account_id=account_id)
    now = timezone.now()
    if account.status != Status.PENDING_LOGIN:
        account_status_change(
            org=account.org,
            account_id=account.pk,
            to_status=Status.PENDING_LOGIN,
            reason="login started",
        )
        account.refresh_from_db()
    account.device_id = qr.device_id or account.device_id
    account.login_uuid = qr.uuid or ""
    account.login_qr_image = qr.qr_image or ""
    account.login_expires_at = now + timedelta(seconds=qr.expires_in) if qr.expires_in else None
    account.login_state = "waiting"
    fields = ["device_id", "login_uuid", "login_qr_image", "login_expires_at", "login_state"]
    if started:
        account.login_started_at = now
        fields.append("login_started_at")
    _save(account, fields)
    if started:
        from apps.wechat_accounts.tasks import account_login_poll as poll_task

        org_id, acct_id = account.org_id, account.pk
        transaction.on_commit(lambda: _schedule_poll(poll_task, org_id, acct_id))


def _schedule_poll(task, org_id: int, account_id: int) -> None:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return  # eager (tests): the status endpoint polls inline instead of a task loop
    task.apply_async(
        kwargs={"org_id": org_id, "account_id": account_id},
        countdown=settings.WECHAT_LOGIN_POLL_SECONDS,
    )


def account_login_poll(*, org_id: int, account_id: int) -> str:
    """One poll of a pending login: refresh an expiring QR with the same device id, finish a
    confirmed login. Returns the login state (waiting, scanned, logged_in, expired, timeout,
    idle). Safe to call from the task loop and from the status endpoint at once."""
    account = _account_get(org=org_id, account_id=account_id)
    if account.status != Status.PENDING_LOGIN or not account.device_id:
        return "idle" if account.status != Status.ONLINE else "logged_in"
    lock = _login_lock(account_id)
    if not lock.acquire(blocking=True):
        return account.login_state or "waiting"
    try:
        account.refresh_from_db()
        if account.status != Status.PENDING_LOGIN:
            return "logged_in" if account.status == Status.ONLINE else "idle"
        started = account.login_started_at or account.created_at
        if timezone.now() - started > timedelta(seconds=settings.WECHAT_LOGIN_TIMEOUT_SECONDS):
            WeChatAccount.objects.filter(pk=account.pk).update(login_state="timeout")
            return "timeout"
        client = client_for_account(account)
        try:
            status = client.check_login(account.device_id, account.login_uuid or None)
        except client_errors.IntegrationError as exc:
            logger.info("login poll of account %s failed: %s", account_id, exc)
            return account.login_state or "waiting"
        if status.state == "logged_in":
            avatar = (status.raw or {}).get("headImgUrl") or ""
            _login_complete(
                org_id=org_id,
                account_id=account_id,
                wxid=status.wxid or account.wxid,
                nickname=status.nickname or "",
                avatar_url=avatar,
                device_id=status.device_id or account.device_id,
            )
            _after_login(org_id=org_id, account_id=account_id)
            return "logged_in"
        if status.state == "expired" or (status.expires_in is not None and status.expires_in <= 5):
            # Refresh with the SAME device id (a new device per login triggers risk control).
            try:
                qr = client.get_login_qr(account.device_id, wxid=account.wxid or None)
            except client_errors.IntegrationError as exc:
                logger.info("QR refresh of account %s failed: %s", account_id, exc)
                return "expired"
            _login_store(org=org_id, account_id=account_id, qr=qr, started=False)
            return "expired"
        WeChatAccount.objects.filter(pk=account.pk).update(
            login_state=status.state,
            nickname=status.nickname or account.nickname,
            updated_at=timezone.now(),
        )
        return status.state
    finally:
        _release(lock)


@transaction.atomic
def _login_complete(
    *, org_id: int, account_id: int, wxid: str, nickname: str, avatar_url: str, device_id: str
) -> WeChatAccount:
    account = _account_for_update(org=org_id, account_id=account_id)
    account.wxid = wxid or account.wxid
    account.nickname = nickname or account.nickname
    account.avatar_url = avatar_url or account.avatar_url
    account.device_id = device_id or account.device_id
    account.login_state = "logged_in"
    account.login_qr_image = ""
    account.logged_in_at = timezone.now()
    _save(
        account,
        [
            "wxid",
            "nickname",
            "avatar_url",
            "device_id",
            "login_state",
            "login_qr_image",
            "logged_in_at",
        ],
    )
    return account_status_change(
        org=org_id, account_id=account_id, to_status=Status.ONLINE, reason="logged in"
    )


def _after_login(*, org_id: int, account_id: int) -> None:
    """Register the connection's webhook URL and start a full contact sync."""
    account = _account_get(org=org_id, account_id=account_id)
    try:
        client_for_account(account).set_callback(account.connection.webhook_url)
    except client_errors.IntegrationError as exc:
        logger.warning("set_callback for account %s failed: %s", account_id, exc)
    account_sync_contacts_start(org=account.org, account_id=account_id)


def account_login_status(*, org: Organization, account_id: int) -> dict:
    """The login's state for the SPA / admin; polls the platform once when still pending."""
    account = _account_get(org=org, account_id=account_id)
    state = account.login_state
    if account.status == Status.PENDING_LOGIN and account.device_id:
        state = account_login_poll(org_id=org.pk, account_id=account_id)
        account.refresh_from_db()
    return {
        "status": account.status,
        "login_state": state,
        "qr_image": account.login_qr_image if account.status == Status.PENDING_LOGIN else "",
        "uuid": account.login_uuid,
        "expires_at": account.login_expires_at,
        "nickname": account.nickname,
        "wxid": account.wxid,
    }


def account_logout(*, org: Organization, account_id: int) -> WeChatAccount:
    account = _account_get(org=org, account_id=account_id)
    if account.device_id:
        try:
            client_for_account(account).logout(account.device_id)
        except client_errors.IntegrationError as exc:
            logger.info("logout of account %s at the platform failed: %s", account_id, exc)
    return account_status_change(
        org=org, account_id=account_id, to_status=Status.LOGGED_OUT, reason="logged out"
    )


def account_reconnect(*, org: Organization, account_id: int) -> WeChatAccount:
    account = _account_get(org=org, account_id=account_id)
    if not account.device_id:
        raise ConflictError(_("The account was never logged in."))
    if account.status not in (Status.OFFLINE, Status.RISK_CONTROLLED, Status.ONLINE):
        raise ConflictError(_("Only a dropped account can reconnect; use the QR login."))
    try:
        status = client_for_account(account).reconnect(account.device_id)
    except client_errors.IntegrationError as exc:
        raise _platform_error(exc) from exc
    if status.state != "logged_in":
        raise ConflictError(_("Reconnect did not log the account in; use the QR login."))
    return account_status_change(
        org=org, account_id=account_id, to_status=Status.ONLINE, reason="reconnected"
    )


def account_confirm_login(*, org: Organization, account_id: int) -> LoginInfo:
    """ "Confirm on phone" re-login (no QR): the phone shows a prompt; poll as for a QR."""
    account = _account_get(org=org, account_id=account_id)
    if not account.device_id or not account.wxid:
        raise ConflictError(_("The account was never logged in; use the QR login."))
    if account.status == Status.ONLINE:
        raise ConflictError(_("The account is already online."))
    try:
        qr = client_for_account(account).dialog_login(account.device_id, wxid=account.wxid)
    except client_errors.IntegrationError as exc:
        raise _platform_error(exc) from exc
    _login_store(org=org, account_id=account_id, qr=qr, started=True)
    return LoginInfo(
        qr_image="", uuid=qr.uuid or "", expires_in=qr.expires_in, device_id=qr.device_id
    )


def account_check_online(*, org_id: int, account_id: int) -> str:
    """Ask the platform whether the account is online and move its status accordingly.

    An account marked offline because its sends failed with the platform's offline error is
    not moved back to online by this check (GeWe's checkOnline can say true while sends fail);
    a reconnect or re-login does that.
    """
    account = _account_get(org=org_id, account_id=account_id)
    if account.status not in (Status.ONLINE, Status.OFFLINE, Status.RISK_CONTROLLED):
        return account.status
    if not account.device_id:
        return account.status
    try:
        online = client_for_account(account).is_online(account.device_id)
    except client_errors.AccountOffline:
        online = False
    except client_errors.IntegrationError as exc:
        logger.info("online check of account %s failed: %s", account_id, exc)
        return account.status
    if online:
        if account.status == Status.ONLINE:
            account_status_change(org=org_id, account_id=account_id, to_status=Status.ONLINE)
        elif account.status == Status.OFFLINE and not account.status_reason.startswith(
            OFFLINE_FROM_SEND
        ):
            account_status_change(
                org=org_id,
                account_id=account_id,
                to_status=Status.ONLINE,
                reason="online check",
            )
    elif account.status == Status.ONLINE:
        account_status_change(
            org=org_id, account_id=account_id, to_status=Status.OFFLINE, reason="online check"
        )
    return WeChatAccount.objects.values_list("status", flat=True).get(pk=account_id)


def accounts_check_online_schedule(*, org: Organization, interval: float | None = None) -> int:
    """Enqueue one online check per account of ``org``, spread evenly over ``interval``."""
    from apps.wechat_accounts.tasks import account_check_online as check_task

    interval = interval or settings.WECHAT_ONLINE_CHECK_INTERVAL_SECONDS
    ids = list(
        WeChatAccount.objects.filter(
            org=org, status__in=[Status.ONLINE, Status.OFFLINE, Status.RISK_CONTROLLED]
        )
        .exclude(device_id="")
        .order_by("id")
        .values_list("id", flat=True)
    )
    step = interval / max(1, len(ids))
    for i, account_id in enumerate(ids):
        check_task.apply_async(
            kwargs={"org_id": org.pk, "account_id": account_id},
            countdown=i * step,
            expires=interval + i * step,
        )
    return len(ids)


# -- contacts ------------------------------------------------------------------------------

CONTACT_FIELDS = ("kind", "nickname", "remark", "alias", "avatar_url", "sex", "source")


@transaction.atomic
def contact_upsert(
    *,
    org: Organization | int,
    account: WeChatAccount,
    wxid: str,
    kind: str | None = None,
    nickname: str | None = None,
    remark: str | None = None,
    alias: str | None = None,
    avatar_url: str | None = None,
    sex: int | None = None,
    source: str | None = None,
    added_at: datetime | None = None,
    attributes: dict | None = None,
) -> Contact:
    """Create or update the contact ``wxid`` of ``account``; only arguments that are not None
    are written (a webhook with a partial profile never blanks other fields). A removed
    contact that reappears is restored."""
    org_id = getattr(org, "pk", org)
    if account.org_id != org_id:
        raise NotFoundError(_("WeChat account not found."))
    wxid = (wxid or "").strip()
    if not wxid:
        raise ApplicationError(_("Invalid data."), fields={"wxid": [_("This field is required.")]})
    contact = Contact.objects.select_for_update().filter(account=account, wxid=wxid).first()
    created = contact is None
    if created:
        contact = Contact(
            org_id=org_id,
            account=account,
            wxid=wxid,
            kind=kind or Contact.kind_for_wxid(wxid),
            added_at=added_at or timezone.now(),
        )
    values = {
        "kind": kind,
        "nickname": nickname,
        "remark": remark,
        "alias": alias,
        "avatar_url": avatar_url,
        "sex": sex,
        "source": source,
    }
    changed = []
    for name, value in values.items():
        if value is not None and getattr(contact, name) != value:
            setattr(contact, name, value)
            changed.append(name)
    if attributes is not None:
        contact.attributes = {**(contact.attributes or {}), **attributes}
        changed.append("attributes")
    if added_at is not None and not created:
        contact.added_at = added_at
        changed.append("added_at")
    if contact.removed_at is not None:
        contact.removed_at = None
        changed.append("removed_at")
    contact.nickname = (contact.nickname or "")[:200]
    if created:
        try:
            contact.full_clean(validate_constraints=False)
        except ValidationError as exc:
            raise _validation_to_app_error(exc) from exc
        try:
            with transaction.atomic():
                contact.save()
        except IntegrityError:  # created concurrently: update that row instead
            return contact_upsert(
                org=org_id,
                account=account,
                wxid=wxid,
                kind=kind,
                nickname=nickname,
                remark=remark,
                alias=alias,
                avatar_url=avatar_url,
                sex=sex,
                source=source,
            )
    elif changed:
        _save(contact, changed)
    return contact


@transaction.atomic
def contact_remove(*, org: Organization | int, account: WeChatAccount, wxid: str) -> bool:
    """The platform says the contact was deleted (DelContacts): keep the row and its history,
    mark it removed."""
    org_id = getattr(org, "pk", org)
    return bool(
        Contact.objects.filter(org_id=org_id, account=account, wxid=wxid, removed_at=None).update(
            removed_at=timezone.now(), updated_at=timezone.now()
        )
    )


@transaction.atomic
def contact_update(*, org: Organization, contact_id: int, **fields: Any) -> Contact:
    contact = Contact.objects.select_for_update().filter(org=org, pk=contact_id).first()
    if contact is None:
        raise NotFoundError(_("Contact not found."))
    tags = fields.pop("tags", None)
    allowed = {"remark", "attributes", "is_blocked", "source"}
    unknown = set(fields) - allowed
    if unknown:
        raise ApplicationError(_("Unknown fields: %(f)s") % {"f": ", ".join(sorted(unknown))})
    for name, value in fields.items():
        setattr(contact, name, value)
    if fields:
        _save(contact, list(fields))
    if tags is not None:
        if any(tag.org_id != org.pk for tag in tags):
            raise ApplicationError(_("Invalid data."), fields={"tags": [_("Unknown tag.")]})
        contact.tags.set(tags)
    return contact


def account_sync_contacts_start(*, org: Organization, account_id: int) -> WeChatAccount:
    """Mark a full contact sync as started and enqueue it (after commit)."""
    from apps.wechat_accounts.tasks import contacts_sync as sync_task

    with transaction.atomic():
        account = _account_for_update(org=org, account_id=account_id)
        if account.status != Status.ONLINE:
            raise ConflictError(_("The account must be online to sync contacts."))
        account.contacts_sync_state = WeChatAccount.SyncState.RUNNING
        account.contacts_sync_done = 0
        account.contacts_sync_total = 0
        account.contacts_sync_error = ""
        _save(
            account,
            [
                "contacts_sync_state",
                "contacts_sync_done",
                "contacts_sync_total",
                "contacts_sync_error",
            ],
        )
        _push_account(account, "contact_sync_progress")
        org_id = org.pk
        transaction.on_commit(lambda: sync_task.delay(org_id=org_id, account_id=account_id))
    return account


def _sync_progress(account: WeChatAccount, **fields: Any) -> None:
    for name, value in fields.items():
        setattr(account, name, value)
    WeChatAccount.objects.filter(pk=account.pk).update(updated_at=timezone.now(), **fields)
    _push_account(account, "contact_sync_progress")


@dataclass
class SyncResult:
    total: int = 0
    created: int = 0
    updated: int = 0
    removed: int = 0
    groups: int = 0


def contacts_sync(*, org_id: int, account_id: int) -> SyncResult:
    """Full contact sync: the id list, then profile details in batches of
    ``WECHAT_CONTACT_SYNC_BATCH`` (progress done/total in the account row and pushed as
    ``contact_sync_progress`` after every batch), platform labels as tags, group members.
    Contacts no longer listed are marked removed. Re-running is harmless (upserts)."""
    account = _account_get(org=org_id, account_id=account_id)
    lock = get_redis().lock(
        redis_key("wechat", "sync", account_id), timeout=3600, blocking_timeout=0
    )
    if not lock.acquire(blocking=False):
        return SyncResult()
    result = SyncResult()
    try:
        client = client_for_account(account)
        device = account.device_id
        try:
            listing = client.list_contacts(device)
            labels = client.list_labels(device)
        except client_errors.IntegrationError as exc:
            _sync_progress(
                account,
                contacts_sync_state=WeChatAccount.SyncState.FAILED,
                contacts_sync_error=str(exc)[:300],
            )
            return result
        tag_by_label = _tags_from_labels(account, labels)
        kinds: dict[str, str] = {}
        for wxid in listing.friends:
            kinds[wxid] = Contact.Kind.FRIEND
        for wxid in listing.chatrooms:
            kinds[wxid] = Contact.Kind.GROUP
        for wxid in listing.ghs:
            kinds[wxid] = Contact.Kind.OFFICIAL
        wxids = list(kinds)
        result.total = len(wxids)
        _sync_progress(account, contacts_sync_total=len(wxids), contacts_sync_done=0)
        batch_size = max(1, min(settings.WECHAT_CONTACT_SYNC_BATCH, 100))
        done = 0
        for start in range(0, len(wxids), batch_size):
            batch = wxids[start : start + batch_size]
            try:
                details = {c.wxid: c for c in client.get_contacts_brief(device, batch)}
            except client_errors.IntegrationError as exc:
                _sync_progress(
                    account,
                    contacts_sync_state=WeChatAccount.SyncState.FAILED,
                    contacts_sync_error=str(exc)[:300],
                )
                return result
            created, updated = _bulk_upsert_contacts(account, batch, kinds, details, tag_by_label)
            result.created += created
            result.updated += updated
            done += len(batch)
            _sync_progress(account, contacts_sync_done=done)
        result.removed = (
            Contact.objects.filter(
                account=account,
                removed_at=None,
                kind__in=list(set(kinds.values())) or [Contact.Kind.FRIEND],
            )
            .exclude(wxid__in=wxids)
            .update(removed_at=timezone.now())
            if wxids
            else 0
        )
        for group in Contact.objects.filter(
            account=account, kind=Contact.Kind.GROUP, removed_at=None
        ):
            try:
                group_members_sync(org_id=org_id, group=group, client=client)
                result.groups += 1
            except client_errors.IntegrationError as exc:
                logger.info("members of %s not synced: %s", group.wxid, exc)
        now = timezone.now()
        _sync_progress(
            account,
            contacts_sync_state=WeChatAccount.SyncState.DONE,
            contacts_synced_at=now,
        )
        return result
    finally:
        _release(lock)


def _tags_from_labels(account: WeChatAccount, labels: list) -> dict[str, Tag]:
    tags: dict[str, Tag] = {}
    for label in labels:
        tag, _created = Tag.objects.get_or_create(org_id=account.org_id, name=label.name[:60])
        ids = dict(tag.platform_label_ids or {})
        if ids.get(str(account.pk)) != label.label_id:
            ids[str(account.pk)] = label.label_id
            Tag.objects.filter(pk=tag.pk).update(platform_label_ids=ids)
        tags[label.label_id] = tag
    return tags


@transaction.atomic
def _bulk_upsert_contacts(
    account: WeChatAccount, batch: list[str], kinds: dict, details: dict, tag_by_label: dict
) -> tuple[int, int]:
    now = timezone.now()
    existing = {c.wxid: c for c in Contact.objects.filter(account=account, wxid__in=batch)}
    to_create, to_update = [], []
    for wxid in batch:
        detail = details.get(wxid)
        values = {
            "kind": kinds[wxid],
            "nickname": (detail.nickname if detail else "")[:200],
            "remark": (detail.remark if detail else "")[:200],
            "alias": (detail.alias if detail else "")[:128],
            "avatar_url": (detail.avatar_url if detail else "")[:1000],
            "sex": detail.sex if detail else None,
        }
        contact = existing.get(wxid)
        if contact is None:
            to_create.append(
                Contact(
                    org_id=account.org_id,
                    account=account,
                    wxid=wxid,
                    source="sync",
                    added_at=now,
                    synced_at=now,
                    **values,
                )
            )
        else:
            for name, value in values.items():
                if value or name == "kind":
                    setattr(contact, name, value)
            contact.synced_at = now
            contact.removed_at = None
            contact.updated_at = now
            to_update.append(contact)
    Contact.objects.bulk_create(to_create, ignore_conflicts=True)
    if to_update:
        Contact.objects.bulk_update(
            to_update,
            [
                "kind",
                "nickname",
                "remark",
                "alias",
                "avatar_url",
                "sex",
                "synced_at",
                "removed_at",
                "updated_at",
            ],
        )
    if tag_by_label:
        contacts = {c.wxid: c for c in Contact.objects.filter(account=account, wxid__in=batch)}
        through = Contact.tags.through
        rows = []
        for wxid, detail in details.items():
            if wxid in contacts and detail.label_ids:
                for label_id in detail.label_ids:
                    tag = tag_by_label.get(str(label_id))
                    if tag is not None:
                        rows.append(through(contact_id=contacts[wxid].pk, tag_id=tag.pk))
        existing = set(
            through.objects.filter(contact_id__in=[r.contact_id for r in rows]).values_list(
                "contact_id", "tag_id"
            )
        )
        new_rows = [r for r in rows if (r.contact_id, r.tag_id) not in existing]
        through.objects.bulk_create(new_rows, ignore_conflicts=True)
        # A bulk insert fires no m2m signal: announce each newly applied tag (SOP triggers).
        applied = [(r.contact_id, r.tag_id) for r in new_rows]
        if applied:
            org_id = account.org_id
            transaction.on_commit(
                lambda: [
                    events.tag_applied.send(
                        sender=Contact, org_id=org_id, contact_id=contact_id, tag_id=tag_id
                    )
                    for contact_id, tag_id in applied
                ]
            )
    return len(to_create), len(to_update)


def group_members_sync(*, org_id: int, group: Contact, client: Any = None) -> int:
    """Replace the stored member list of ``group`` with the platform's."""
    if group.org_id != org_id or group.kind != Contact.Kind.GROUP:
        raise NotFoundError(_("Group not found."))
    client = client or client_for_account(group.account)
    members = client.list_group_members(group.account.device_id, group.wxid)
    with transaction.atomic():
        GroupMember.objects.filter(group=group).exclude(
            member_wxid__in=[m.wxid for m in members]
        ).delete()
        existing = {m.member_wxid: m for m in GroupMember.objects.filter(group=group)}
        new = []
        for m in members:
            row = existing.get(m.wxid)
            if row is None:
                new.append(
                    GroupMember(
                        org_id=org_id,
                        group=group,
                        member_wxid=m.wxid,
                        nickname=(m.nickname or "")[:200],
                        display_name=(m.display_name or "")[:200],
                        inviter_wxid=(m.inviter or "")[:128],
                    )
                )
            else:
                row.nickname = (m.nickname or "")[:200]
                row.display_name = (m.display_name or "")[:200]
                row.save(update_fields=["nickname", "display_name", "updated_at"])
        GroupMember.objects.bulk_create(new, ignore_conflicts=True)
    return len(members)


# -- CSV import / export -------------------------------------------------------------------

CONTACT_CSV_COLUMNS = [
    "account",
    "wxid",
    "kind",
    "nickname",
    "remark",
    "alias",
    "tags",
    "source",
    "blocked",
    "added_at",
]
TAG_CSV_COLUMNS = ["name", "color"]


def contacts_export_csv(*, queryset) -> str:
    """CSV of ``queryset`` (already scoped to the org by the caller's selector)."""
    out = io.StringIO()
    writer = csv_export.writer(out)
    writer.writerow(CONTACT_CSV_COLUMNS)
    for c in queryset.select_related("account").prefetch_related("tags"):
        writer.writerow(
            [
                c.account.name,
                c.wxid,
                c.kind,
                c.nickname,
                c.remark,
                c.alias,
                ";".join(sorted(t.name for t in c.tags.all())),
                c.source,
                "1" if c.is_blocked else "0",
                c.added_at.isoformat() if c.added_at else "",
            ]
        )
    return out.getvalue()


@dataclass
class ImportResult:
    created: int = 0
    updated: int = 0
    errors: list[dict] = field(default_factory=list)


def _read_csv(data: bytes | str) -> csv.DictReader:
    if isinstance(data, bytes):
        data = data.decode("utf-8-sig")
    return csv.DictReader(io.StringIO(data))


def contacts_import_csv(
    *, org: Organization, data: bytes | str, account: WeChatAccount | None = None
) -> ImportResult:
    """Import contacts (columns as in the export; ``account`` column = account name unless an
    account is given). Tags are created by name. Rows with errors are reported, not fatal."""
    result = ImportResult()
    accounts = {a.name: a for a in WeChatAccount.objects.filter(org=org)}
    for line, row in enumerate(_read_csv(data), start=2):
        target = account or accounts.get((row.get("account") or "").strip())
        wxid = (row.get("wxid") or "").strip()
        if target is None or target.org_id != org.pk:
            result.errors.append({"line": line, "error": _("Unknown account.")})
            continue
        if not wxid:
            result.errors.append({"line": line, "error": _("wxid is required.")})
            continue
        kind = (row.get("kind") or "").strip() or None
        if kind and kind not in Contact.Kind.values:
            result.errors.append({"line": line, "error": _("Unknown kind.")})
            continue
        added = parse_datetime(row.get("added_at") or "") if row.get("added_at") else None
        try:
            with transaction.atomic():
                existed = Contact.objects.filter(account=target, wxid=wxid).exists()
                contact = contact_upsert(
                    org=org,
                    account=target,
                    wxid=wxid,
                    kind=kind,
                    nickname=row.get("nickname") or None,
                    remark=row.get("remark") or None,
                    alias=row.get("alias") or None,
                    source=row.get("source") or "import",
                    added_at=added,
                )
                blocked = (row.get("blocked") or "").strip().lower() in ("1", "true", "yes")
                if contact.is_blocked != blocked and row.get("blocked") not in (None, ""):
                    contact.is_blocked = blocked
                    contact.save(update_fields=["is_blocked", "updated_at"])
                names = [n.strip() for n in (row.get("tags") or "").split(";") if n.strip()]
                for name in names:
                    tag, _c = Tag.objects.get_or_create(org=org, name=name[:60])
                    contact.tags.add(tag)
        except ApplicationError as exc:
            result.errors.append({"line": line, "error": exc.message, "fields": exc.fields})
            continue
        if existed:
            result.updated += 1
        else:
            result.created += 1
    return result


def tags_export_csv(*, queryset) -> str:
    out = io.StringIO()
    writer = csv_export.writer(out)
    writer.writerow(TAG_CSV_COLUMNS)
    for tag in queryset:
        writer.writerow([tag.name, tag.color])
    return out.getvalue()


def tags_import_csv(*, org: Organization, data: bytes | str) -> ImportResult:
    result = ImportResult()
    for line, row in enumerate(_read_csv(data), start=2):
        name = (row.get("name") or "").strip()
        color = (row.get("color") or "").strip() or "#1677ff"
        if not name:
            result.errors.append({"line": line, "error": _("name is required.")})
            continue
        tag = Tag.objects.filter(org=org, name=name).first()
        try:
            if tag is None:
                tag_create(org=org, name=name, color=color)
                result.created += 1
            else:
                tag_update(org=org, tag_id=tag.pk, color=color)
                result.updated += 1
        except ApplicationError as exc:
            result.errors.append({"line": line, "error": exc.message, "fields": exc.fields})
    return result


# -- tags ----------------------------------------------------------------------------------


@transaction.atomic
def tag_create(*, org: Organization, name: str, color: str = "#1677ff") -> Tag:
    if Tag.objects.filter(org=org, name=name).exists():
        raise ApplicationError(_("Invalid data."), fields={"name": [_("This tag exists.")]})
    tag = Tag(org=org, name=name, color=color)
    _save(tag)
    return tag


@transaction.atomic
def tag_update(*, org: Organization, tag_id: int, **fields: Any) -> Tag:
    tag = Tag.objects.select_for_update().filter(org=org, pk=tag_id).first()
    if tag is None:
        raise NotFoundError(_("Tag not found."))
    if (
        "name" in fields
        and Tag.objects.filter(org=org, name=fields["name"]).exclude(pk=tag.pk).exists()
    ):
        raise ApplicationError(_("Invalid data."), fields={"name": [_("This tag exists.")]})
    for name, value in fields.items():
        if name not in ("name", "color"):
            raise ApplicationError(_("Unknown field %(f)s") % {"f": name})
        setattr(tag, name, value)
    _save(tag, list(fields))
    return tag


@transaction.atomic
def tag_delete(*, org: Organization, tag_id: int) -> None:
    deleted, _d = Tag.objects.filter(org=org, pk=tag_id).delete()
    if not deleted:
        raise NotFoundError(_("Tag not found."))


# -- friend requests -----------------------------------------------------------------------


@transaction.atomic
def friend_request_record(
    *,
    org: Organization | int,
    account: WeChatAccount,
    v3: str,
    v4: str = "",
    scene: int = 0,
    from_wxid: str = "",
    nickname: str = "",
    content: str = "",
) -> FriendRequest:
    """Store an incoming friend request (idempotent on the ticket); accepted automatically
    after commit when the account says so."""
    org_id = getattr(org, "pk", org)
    if account.org_id != org_id:
        raise NotFoundError(_("WeChat account not found."))
    request, created = FriendRequest.objects.get_or_create(
        account=account,
        v3=v3[:300],
        defaults={
            "org_id": org_id,
            "v4": v4[:300],
            "scene": scene or 0,
            "from_wxid": from_wxid[:128],
            "nickname": nickname[:200],
            "content": content[:500],
        },
    )
    if created and account.auto_accept_friends:
        from apps.wechat_accounts.tasks import friend_request_accept as accept_task

        request_id = request.pk
        transaction.on_commit(lambda: accept_task.delay(org_id=org_id, request_id=request_id))
    return request


def friend_request_accept(*, org: Organization | int, request_id: int, user=None) -> FriendRequest:
    """Accept at the platform, add the contact and send the welcome message (pipeline)."""
    org_id = getattr(org, "pk", org)
    request = (
        FriendRequest.objects.select_related("account", "account__org", "account__connection")
        .filter(org_id=org_id, pk=request_id)
        .first()
    )
    if request is None:
        raise NotFoundError(_("Friend request not found."))
    if request.status == FriendRequest.Status.ACCEPTED:
        return request
    claimed = FriendRequest.objects.filter(
        pk=request.pk, status__in=[FriendRequest.Status.PENDING, FriendRequest.Status.FAILED]
    ).update(
        status=FriendRequest.Status.ACCEPTED,
        handled_at=timezone.now(),
        handled_by=user,
        updated_at=timezone.now(),
    )
    if not claimed:
        request.refresh_from_db()
        return request
    account = request.account
    try:
        client_for_account(account).accept_friend(
            account.device_id, v3=request.v3, v4=request.v4, scene=request.scene
        )
    except client_errors.IntegrationError as exc:
        FriendRequest.objects.filter(pk=request.pk).update(
            status=FriendRequest.Status.FAILED, error=str(exc)[:300]
        )
        raise _platform_error(exc) from exc
    with transaction.atomic():
        if request.from_wxid:
            contact_upsert(
                org=org_id,
                account=account,
                wxid=request.from_wxid,
                kind=Contact.Kind.FRIEND,
                nickname=request.nickname or None,
                source="friend_request",
                added_at=timezone.now(),
            )
            if account.welcome_message:
                send(
                    org=account.org,
                    account=account,
                    to_wxid=request.from_wxid,
                    kind="text",
                    text=account.welcome_message,
                    client_msg_id=f"welcome-{request.pk}",
                )
    request.refresh_from_db()
    return request


@transaction.atomic
def friend_request_reject(*, org: Organization, request_id: int, user=None) -> FriendRequest:
    request = FriendRequest.objects.select_for_update().filter(org=org, pk=request_id).first()
    if request is None:
        raise NotFoundError(_("Friend request not found."))
    if request.status != FriendRequest.Status.PENDING:
        raise ConflictError(_("This request was already handled."))
    request.status = FriendRequest.Status.REJECTED
    request.handled_at = timezone.now()
    request.handled_by = user
    _save(request, ["status", "handled_at", "handled_by"])
    return request


# -- moments -------------------------------------------------------------------------------


@transaction.atomic
def moment_create(
    *,
    org: Organization,
    account: WeChatAccount,
    text: str = "",
    images: list[str] | None = None,
    link: dict | None = None,
    visibility: str = MomentPost.Visibility.PUBLIC,
    visible_tags: list[Tag] | None = None,
    scheduled_at: datetime | None = None,
    user=None,
) -> MomentPost:
    """A Moments post, now (``scheduled_at`` empty or past) or at ``scheduled_at`` (the
    periodic ``moments_post_due`` task picks it up)."""
    if account.org_id != org.pk:
        raise ApplicationError(_("Invalid data."), fields={"account": [_("Unknown account.")]})
    post = MomentPost(
        org=org,
        account=account,
        text=text,
        images=images or [],
        link=link or {},
        visibility=visibility,
        scheduled_at=scheduled_at,
        created_by=user,
    )
    _save(post)
    if visible_tags:
        if any(t.org_id != org.pk for t in visible_tags):
            raise ApplicationError(_("Invalid data."), fields={"visible_tags": [_("Unknown tag.")]})
        post.visible_tags.set(visible_tags)
    if scheduled_at is None or scheduled_at <= timezone.now():
        from apps.wechat_accounts.tasks import moment_post as post_task

        post_id, org_id = post.pk, org.pk
        transaction.on_commit(lambda: post_task.delay(org_id=org_id, moment_id=post_id))
    return post


@transaction.atomic
def moment_cancel(*, org: Organization, moment_id: int) -> MomentPost:
    post = MomentPost.objects.select_for_update().filter(org=org, pk=moment_id).first()
    if post is None:
        raise NotFoundError(_("Moment not found."))
    if post.status != MomentPost.Status.SCHEDULED:
        raise ConflictError(_("Only a scheduled post can be cancelled."))
    post.status = MomentPost.Status.CANCELLED
    _save(post, ["status"])
    return post


def moment_post(*, org_id: int, moment_id: int) -> str:
    """Post one Moment through the account's send limits (claim, limiter, platform call)."""
    from apps.core import ratelimit

    post = (
        MomentPost.objects.select_related("account", "account__org", "account__connection")
        .filter(org_id=org_id, pk=moment_id)
        .first()
    )
    if post is None or post.status != MomentPost.Status.SCHEDULED:
        return "skipped"
    account = post.account
    if account.status != Status.ONLINE:
        return "not_online"
    limits = send_limits(account)
    decision = ratelimit.acquire(limits)
    if not decision.allowed:
        return "rate_limited"  # stays scheduled; the due task tries again next minute
    if not MomentPost.objects.filter(pk=post.pk, status=MomentPost.Status.SCHEDULED).update(
        status=MomentPost.Status.POSTING, attempts=post.attempts + 1, updated_at=timezone.now()
    ):
        ratelimit.release(limits, decision.token)
        return "skipped"
    client = client_for_account(account)
    try:
        if post.images or post.link:
            raise client_errors.NotSupported(
                "image and link Moments are not supported by the platform client yet"
            )
        moment = client.post_moment_text(account.device_id, post.text)
    except client_errors.IntegrationError as exc:
        retry = (
            isinstance(exc, client_errors.RateLimited)
            or (isinstance(exc, client_errors.Unavailable) and exc.before_send)
        ) and post.attempts + 1 < settings.WECHAT_SEND_MAX_ATTEMPTS
        MomentPost.objects.filter(pk=post.pk).update(
            status=MomentPost.Status.SCHEDULED if retry else MomentPost.Status.FAILED,
            error=f"{type(exc).__name__}: {exc}"[:500],
            updated_at=timezone.now(),
        )
        if isinstance(exc, client_errors.AccountOffline):
            account_mark_offline_from_send(org_id=org_id, account_id=account.pk, reason=str(exc))
        return "failed"
    MomentPost.objects.filter(pk=post.pk).update(
        status=MomentPost.Status.POSTED,
        platform_id=moment.moment_id,
        posted_at=timezone.now(),
        error="",
        updated_at=timezone.now(),
    )
    WeChatAccount.objects.filter(pk=account.pk).update(moments_fetched_at=None)
    return "posted"


def moments_post_due(*, org: Organization) -> int:
    from apps.wechat_accounts.tasks import moment_post as post_task

    ids = list(
        MomentPost.objects.filter(
            org=org, status=MomentPost.Status.SCHEDULED, account__status=Status.ONLINE
        )
        .filter(scheduled_at__lte=timezone.now())
        .values_list("id", flat=True)
    )
    ids += list(
        MomentPost.objects.filter(
            org=org,
            status=MomentPost.Status.SCHEDULED,
            scheduled_at__isnull=True,
            account__status=Status.ONLINE,
            updated_at__lt=timezone.now() - timedelta(minutes=1),
        ).values_list("id", flat=True)
    )
    for moment_id in ids:
        post_task.delay(org_id=org.pk, moment_id=moment_id)
    return len(ids)


def moments_timeline_refresh(*, org: Organization, account_id: int, force: bool = False) -> int:
    """Refresh the cached timeline when older than ``WECHAT_MOMENTS_TIMELINE_TTL_SECONDS``."""
    account = _account_get(org=org, account_id=account_id)
    ttl = timedelta(seconds=settings.WECHAT_MOMENTS_TIMELINE_TTL_SECONDS)
    if (
        not force
        and account.moments_fetched_at
        and timezone.now() - account.moments_fetched_at < ttl
    ):
        return 0
    try:
        page = client_for_account(account).list_moments(account.device_id)
    except client_errors.IntegrationError as exc:
        raise _platform_error(exc) from exc
    with transaction.atomic():
        for item in page.items:
            posted = datetime.fromtimestamp(item.create_time, tz=UTC) if item.create_time else None
            MomentTimelineItem.objects.update_or_create(
                account=account,
                moment_id=item.moment_id,
                defaults={
                    "org_id": org.pk,
                    "author_wxid": item.wxid[:128],
                    "author_nickname": (item.nickname or "")[:200],
                    "posted_at": posted,
                    "raw": item.raw,
                },
            )
        WeChatAccount.objects.filter(pk=account.pk).update(moments_fetched_at=timezone.now())
    return len(page.items)
