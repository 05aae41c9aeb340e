"""Webhook ingestion: the platform callbacks (GeWe, E云管家) into the ``WebhookEvent`` inbox, and
the parsing of a stored event into contacts, conversations and messages.

The view calls ``webhook_receive``: it validates the body, stores one ``WebhookEvent`` (unique on
connection + dedupe key, so a redelivery is a no-op) and enqueues ``webhook_event_process`` after
commit; the platform gets its 200 only after the row is stored, with its chat as
``order_key``. The task calls ``webhook_event_process``: it claims the event for a short lease
(``claimed_until``; the sweep re-enqueues only expired claims), then in one transaction takes
the chat's lock (events of one chat in order, other chats in parallel; the lock order is
``apps.conversations.locking``), locks the event, parses it (``parse_gewe`` /
``parse_ecloud``, pure functions over the platform's real payload shapes, see
``specs/wechat-platforms.md``) and hands the result to the handler the owning app registered
at startup (``apps.integrations.webhooks.routing``: messages to ``apps.conversations``; friend
requests, contacts and offline notices to ``apps.wechat_accounts``), so this app imports
neither. A crash rolls everything back and leaves the event ``received`` for the retry; a
processed event is never processed again.
"""

from apps.integrations.webhooks.ecloud import (
    ECLOUD_KINDS,
    ecloud_dedupe_key,
    parse_ecloud,
)
from apps.integrations.webhooks.events import (
    APPMSG_KINDS,
    GROUP_MEMBER_PATTERNS,
    InboundMessage,
    ParsedEvent,
    Provider,
    WebhookRejected,
)
from apps.integrations.webhooks.gewe import (
    GEWE_KINDS,
    gewe_dedupe_key,
    is_ping,
    parse_gewe,
)
from apps.integrations.webhooks.process import (
    chat_lock_key,
    webhook_event_process,
    webhook_event_release,
    webhook_events_requeue_stuck_all_orgs,
)
from apps.integrations.webhooks.receive import (
    DEDUPE_KEYS,
    PARSERS,
    ReceiveResult,
    connection_for_secret,
    dedupe_key_for,
    enqueue_process,
    event_type_of,
    order_key_for,
    webhook_receive,
)

__all__ = [
    "APPMSG_KINDS",
    "DEDUPE_KEYS",
    "ECLOUD_KINDS",
    "GEWE_KINDS",
    "GROUP_MEMBER_PATTERNS",
    "InboundMessage",
    "PARSERS",
    "ParsedEvent",
    "Provider",
    "ReceiveResult",
    "WebhookRejected",
    "connection_for_secret",
    "dedupe_key_for",
    "ecloud_dedupe_key",
    "enqueue_process",
    "event_type_of",
    "gewe_dedupe_key",
    "is_ping",
    "parse_ecloud",
    "parse_gewe",
    "chat_lock_key",
    "order_key_for",
    "webhook_event_process",
    "webhook_event_release",
    "webhook_events_requeue_stuck_all_orgs",
    "webhook_receive",
]
