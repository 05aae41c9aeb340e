"""Helpers shared by the wechat_accounts services modules."""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from apps.core import realtime
from apps.core.exceptions import ApplicationError, NotFoundError
from apps.integrations.clients import errors as client_errors
from apps.orgs.models import Organization
from apps.wechat_accounts.models import WeChatAccount

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


def _release(lock) -> None:
    try:
        lock.release()
    except Exception:  # noqa: BLE001 - the lock expired; nothing to give back
        logger.debug("lock %s already released", lock.name)
