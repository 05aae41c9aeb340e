"""The webhook events this app owns (registered with the integrations inbox at startup): an
account going offline, friend requests, contact changes. ``account_for_event`` finds the
account an event belongs to; the conversations app's message handler uses it too."""

from __future__ import annotations

from apps.core.exceptions import ConflictError
from apps.integrations.models import WebhookEvent
from apps.integrations.webhooks.events import ParsedEvent
from apps.integrations.webhooks.routing import webhook_handler_register
from apps.wechat_accounts import services
from apps.wechat_accounts.models import WeChatAccount

NO_ACCOUNT = (WebhookEvent.Status.IGNORED, "no WeChat account for this device / wxid")
PROCESSED = (WebhookEvent.Status.PROCESSED, "")


def account_for_event(event: WebhookEvent, parsed: ParsedEvent) -> WeChatAccount | None:
    return services.account_find(
        connection=event.connection,
        device_id=parsed.device_id or None,
        wxid=parsed.account_wxid or None,
    )


def on_offline(*, event: WebhookEvent, parsed: ParsedEvent) -> tuple[str, str]:
    account = account_for_event(event, parsed)
    if account is None:
        return NO_ACCOUNT
    try:
        services.account_status_change(
            org=event.org,
            account_id=account.pk,
            to_status=WeChatAccount.Status.OFFLINE,
            reason=(parsed.reason or "offline callback")[:300],
        )
    except ConflictError as exc:
        return WebhookEvent.Status.IGNORED, str(exc)
    return PROCESSED


def on_friend_request(*, event: WebhookEvent, parsed: ParsedEvent) -> tuple[str, str]:
    account = account_for_event(event, parsed)
    if account is None:
        return NO_ACCOUNT
    services.friend_request_record(org=event.org, account=account, **parsed.data)
    return PROCESSED


def on_contact_update(*, event: WebhookEvent, parsed: ParsedEvent) -> tuple[str, str]:
    account = account_for_event(event, parsed)
    if account is None:
        return NO_ACCOUNT
    data = {k: v for k, v in parsed.data.items() if v is not None}
    services.contact_upsert(org=event.org, account=account, **data)
    return PROCESSED


def on_contact_delete(*, event: WebhookEvent, parsed: ParsedEvent) -> tuple[str, str]:
    account = account_for_event(event, parsed)
    if account is None:
        return NO_ACCOUNT
    services.contact_remove(org=event.org, account=account, wxid=parsed.data["wxid"])
    return PROCESSED


def register() -> None:
    webhook_handler_register("offline", on_offline)
    webhook_handler_register("friend_request", on_friend_request)
    webhook_handler_register("contact_update", on_contact_update)
    webhook_handler_register("contact_delete", on_contact_delete)
