"""Where a parsed webhook event goes. The inbox imports no domain app: each app registers the
handler of the event kinds it owns at startup (its ``AppConfig.ready``):

- ``apps.wechat_accounts``: ``offline``, ``friend_request``, ``contact_update``,
  ``contact_delete``;
- ``apps.conversations``: ``message``.

A handler is called inside the processing transaction as ``handler(event=..., parsed=...)`` and
answers ``(WebhookEvent.Status, reason)``.
"""

from __future__ import annotations

from collections.abc import Callable

from apps.integrations.models import WebhookEvent
from apps.integrations.webhooks.events import ParsedEvent

Handler = Callable[..., tuple[str, str]]

_handlers: dict[str, Handler] = {}


def webhook_handler_register(kind: str, handler: Handler) -> None:
    _handlers[kind] = handler


def webhook_event_route(event: WebhookEvent, parsed: ParsedEvent) -> tuple[str, str]:
    handler = _handlers.get(parsed.kind)
    if handler is None:
        return WebhookEvent.Status.IGNORED, f"no handler for {parsed.kind} events"
    return handler(event=event, parsed=parsed)
