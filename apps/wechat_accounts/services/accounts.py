"""Accounts: create, update, delete and the status state machine."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core import events
from apps.core.exceptions import ApplicationError, ConflictError
from apps.integrations.models import PlatformConnection
from apps.orgs.models import Organization
from apps.orgs.selectors import membership_exists
from apps.wechat_accounts.models import (
    AccountStatusEvent,
    WeChatAccount,
)
from apps.wechat_accounts.services._common import (
    OFFLINE_FROM_SEND,
    Status,
    _account_for_update,
    _push_account,
    _save,
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
    ai_app = fields.get("default_ai_app")
    if ai_app is not None and ai_app.org_id != org.pk:
        raise ApplicationError(
            _("Invalid data."), fields={"default_ai_app": [_("Unknown AI app.")]}
        )
    owner = fields.get("owner")
    if owner is not None and not membership_exists(org=org, user=owner):
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
    tells the owner and managers about offline / risk_controlled / banned; the conversations
    app enqueues the account's waiting outbound messages when it goes online).
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


# A send proves the account is online; refreshing ``last_seen_at`` more often than this only
# costs a write per message (issue 19).
SEEN_REFRESH_SECONDS = 60


def account_mark_seen(*, account: WeChatAccount, now: datetime | None = None) -> bool:
    """Refresh ``last_seen_at`` after a successful platform call, unless the loaded ``account``
    shows it was refreshed less than ``SEEN_REFRESH_SECONDS`` ago. Returns whether it wrote."""
    now = now or timezone.now()
    seen = account.last_seen_at
    if seen is not None and timedelta(0) <= now - seen < timedelta(seconds=SEEN_REFRESH_SECONDS):
        return False
    WeChatAccount.objects.filter(org_id=account.org_id, pk=account.pk).update(last_seen_at=now)
    account.last_seen_at = now
    return True
