"""The webhook event this app owns (registered with the integrations inbox at startup): a
message, recorded by ``services.inbound_message_record`` (which schedules the AI turn)."""

from __future__ import annotations

from apps.conversations import services
from apps.integrations.models import WebhookEvent
from apps.integrations.webhooks.events import ParsedEvent
from apps.integrations.webhooks.routing import webhook_handler_register
from apps.integrations.webhooks.validate import fit_message
from apps.wechat_accounts.webhook_handlers import NO_ACCOUNT, account_for_event


def on_message(*, event: WebhookEvent, parsed: ParsedEvent) -> tuple[str, str]:
    account = account_for_event(event, parsed)
    if account is None:
        return NO_ACCOUNT
    fit_message(parsed.message)
    result = services.inbound_message_record(org=event.org, account=account, inbound=parsed.message)
    return result.status, result.reason


def register() -> None:
    webhook_handler_register("message", on_message)
