"""QR login, logout, reconnect and the online checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core.exceptions import ConflictError
from apps.core.redis import get_redis, redis_key
from apps.integrations import platform_data as pd
from apps.integrations.clients import errors as client_errors
from apps.orgs.models import Organization
from apps.wechat_accounts.models import WeChatAccount
from apps.wechat_accounts.platform import client_for_account
from apps.wechat_accounts.services._common import (
    OFFLINE_FROM_SEND,
    Status,
    _account_for_update,
    _account_get,
    _platform_error,
    _release,
    _save,
)
from apps.wechat_accounts.services.accounts import account_status_change
from apps.wechat_accounts.services.contacts import account_sync_contacts_start

logger = logging.getLogger(__name__)


# -- QR login ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginInfo:
    qr_image: str
    uuid: str
    expires_in: int | None
    device_id: str


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
    # Platform data is data: a malformed value is dropped or cut, never blocks the login.
    account.device_id = pd.ident(qr.device_id, 128, field="login.device_id") or account.device_id
    account.login_uuid = pd.text(qr.uuid, 128, field="login.uuid")
    account.login_qr_image = pd.text(qr.qr_image, 2_000_000, field="login.qr_image")
    expires_in = pd.small_int(qr.expires_in, field="login.expires_in", low=0, high=86400)
    account.login_expires_at = now + timedelta(seconds=expires_in) if expires_in else None
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
            raw = status.raw if isinstance(status.raw, dict) else {}
            avatar = raw.get("headImgUrl") or raw.get("headUrl") or ""
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
            login_state=pd.text(status.state, 16, field="login.state") or "waiting",
            nickname=pd.text(status.nickname, 200, field="login.nickname") or account.nickname,
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
    # Platform data is data: an unusable value keeps the stored one (or stays empty), a long
    # nickname is cut; a confirmed login always completes.
    account.wxid = pd.ident(wxid, 64, field="login.wxid") or account.wxid
    account.nickname = pd.text(nickname, 200, field="login.nickname") or account.nickname
    account.avatar_url = pd.url(avatar_url, 1000, field="login.avatar_url") or account.avatar_url
    account.device_id = pd.ident(device_id, 128, field="login.device_id") or account.device_id
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
