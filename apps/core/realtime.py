"""The one push helper: publish an event to a user, a conversation, an organisation or the
monitor group, from views, services (after commit) and Celery workers alike.

Pushes are hints; the database is the truth. A push never raises into its caller: when the
channel layer (Redis) is briefly unavailable the failure is logged and counted.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections.abc import Coroutine
from typing import Any

from channels.layers import get_channel_layer
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from apps.core import ws_hub

logger = logging.getLogger(__name__)

# Counted here so /metrics and tests can read it without importing Prometheus.
push_failures = 0

# The channel-layer message type every consumer handles (method ``realtime_event``).
CHANNEL_MESSAGE_TYPE = "realtime.event"
# Control messages to consumers (method ``realtime_control``): e.g. {"action": "disconnect"}.
CHANNEL_CONTROL_TYPE = "realtime.control"


def push_failure_count() -> int:
    """Pushes that failed in this process since it started (for /metrics and tests)."""
    return push_failures


def group_for_org(org_id: int) -> str:
    return f"org.{org_id}.all"


def group_for_user(org_id: int, user_id: int) -> str:
    return f"org.{org_id}.user.{user_id}"


def group_for_conversation(org_id: int, conversation_id: int) -> str:
    return f"org.{org_id}.conversation.{conversation_id}"


def group_for_conversations(org_id: int) -> str:
    """Everyone watching the whole inbox of an organisation."""
    return f"org.{org_id}.conversations"


def group_for_monitor(org_id: int) -> str:
    return f"org.{org_id}.monitor"


def channel_message(envelope: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """The channel-layer message of one event: the envelope plus its JSON ``text``, encoded
    once here rather than by every receiving socket."""
    import json

    return {
        "type": CHANNEL_MESSAGE_TYPE,
        "event": envelope,
        "text": json.dumps(envelope),
        **extra,
    }


def make_envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    """The wire envelope ``{"type", "data", "ts", "id"}``; data made JSON-safe here."""
    import json

    safe = json.loads(json.dumps(data, cls=DjangoJSONEncoder))
    return {
        "type": event_type,
        "data": safe,
        "ts": timezone.now().isoformat(),
        "id": uuid.uuid4().hex,
    }


# Sync callers (views, services, Celery workers) publish through one long-lived event loop per
# process. ``async_to_sync`` would start a fresh loop for every call, and channels-redis keeps its
# connection pools per loop, so each push paid for a new Redis connection (10-15 ms measured).
PUSH_TIMEOUT_SECONDS = 5.0
_loop: asyncio.AbstractEventLoop | None = None
_loop_pid: int | None = None
_loop_lock = threading.Lock()


def _publisher_loop() -> asyncio.AbstractEventLoop:
    global _loop, _loop_pid
    with _loop_lock:
        # A forked child (Celery prefork) inherits the variable but not the thread: start anew.
        if _loop is None or _loop_pid != os.getpid() or _loop.is_closed():
            _loop = asyncio.new_event_loop()
            _loop_pid = os.getpid()
            threading.Thread(target=_loop.run_forever, name="realtime-push", daemon=True).start()
        return _loop


def _run_sync(coro: Coroutine) -> None:
    future = asyncio.run_coroutine_threadsafe(coro, _publisher_loop())
    try:
        future.result(timeout=PUSH_TIMEOUT_SECONDS)
    except BaseException:
        future.cancel()
        raise


async def _group_send_all(layer, groups: list[str], message: dict[str, Any]) -> None:
    # One PUBLISH per group: each Daphne process with a socket in the group receives it once and
    # hands it to its local sockets there (apps.core.ws_hub).
    await asyncio.gather(*(ws_hub.publish(layer, group, message) for group in groups))


def push(event_type: str, data: dict[str, Any], *, groups: list[str]) -> bool:
    """Send one event to each group now. Returns False (never raises) when delivery failed."""
    global push_failures
    envelope = make_envelope(event_type, data)
    try:
        layer = get_channel_layer()
        if layer is None:
            return False
        _run_sync(_group_send_all(layer, list(groups), channel_message(envelope)))
    except Exception:  # noqa: BLE001 - a push must never break the caller's work.
        push_failures += 1
        logger.warning("Realtime push of %s to %s failed", event_type, groups, exc_info=True)
        return False
    return True


def push_on_commit(event_type: str, data: dict[str, Any], *, groups: list[str]) -> None:
    """Push once the current transaction commits (immediately outside a transaction)."""
    transaction.on_commit(lambda: push(event_type, data, groups=groups))


async def apush(
    event_type: str,
    data: dict[str, Any],
    *,
    groups: list[str],
    exclude_user_id: int | None = None,
) -> bool:
    """The async twin of ``push`` for consumers; ``exclude_user_id`` skips that user's sockets
    (a typing indicator is not echoed to its author)."""
    global push_failures
    envelope = make_envelope(event_type, data)
    message = channel_message(envelope)
    if exclude_user_id is not None:
        message["exclude_user_id"] = exclude_user_id
    try:
        layer = get_channel_layer()
        if layer is None:
            return False
        for group in groups:
            await ws_hub.publish(layer, group, message)
    except Exception:  # noqa: BLE001 - a push must never break the caller's work.
        push_failures += 1
        logger.warning("Realtime push of %s to %s failed", event_type, groups, exc_info=True)
        return False
    return True


def send_control(action: str, *, groups: list[str], **extra: Any) -> bool:
    """Ask the consumers in ``groups`` to act on themselves (``disconnect``); never raises."""
    global push_failures
    try:
        layer = get_channel_layer()
        if layer is None:
            return False
        _run_sync(
            _group_send_all(
                layer, list(groups), {"type": CHANNEL_CONTROL_TYPE, "action": action, **extra}
            )
        )
    except Exception:  # noqa: BLE001
        push_failures += 1
        logger.warning("Realtime control %s to %s failed", action, groups, exc_info=True)
        return False
    return True
