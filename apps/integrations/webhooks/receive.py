"""Receiving (the view): validate the body, store one inbox row, enqueue processing."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.integrations.models import PlatformConnection, WebhookEvent
from apps.integrations.webhooks.ecloud import ecloud_dedupe_key, parse_ecloud
from apps.integrations.webhooks.events import Provider, WebhookRejected, _ci, _str_id
from apps.integrations.webhooks.gewe import gewe_dedupe_key, is_ping, parse_gewe
from apps.integrations.webhooks.validate import check_fields, load_body, storable

logger = logging.getLogger(__name__)


PARSERS = {Provider.GEWE: parse_gewe, Provider.ECLOUD: parse_ecloud}
DEDUPE_KEYS = {Provider.GEWE: gewe_dedupe_key, Provider.ECLOUD: ecloud_dedupe_key}


def event_type_of(provider: str, payload: dict) -> str:
    if provider == Provider.GEWE:
        type_name = str(_ci(payload, "TypeName") or "")
        data = _ci(payload, "Data")
        if type_name == "AddMsg" and isinstance(data, dict):
            return f"AddMsg:{_ci(data, 'MsgType')}"
        return type_name[:64]
    return _str_id(payload.get("messageType"))[:64]


def order_key_for(provider: str, payload: dict) -> str:
    """The chat an event belongs to (``<device or account wxid>:<chat wxid>``), for message
    events; "" for the rest, which need no order. Events with one key are applied in arrival
    order, events of different chats independently. Any parsing trouble answers "" (the
    worker parses again and rejects what is not the platform's shape)."""
    try:
        parsed = PARSERS[provider](payload)
    except Exception:  # noqa: BLE001 - ordering is a hint; the worker decides what the event is
        return ""
    message = parsed.message
    if parsed.kind != "message" or message is None or not isinstance(message.chat_wxid, str):
        return ""
    account = parsed.device_id or parsed.account_wxid
    return f"{account}:{message.chat_wxid}"[:200] if message.chat_wxid else ""


def dedupe_key_for(provider: str, payload: dict, body: bytes) -> str:
    """The platform's message id, or a hash of the body plus the hour for id-less events
    (ModContacts, Offline...): a burst of redeliveries is dropped, a real repeat later is not."""
    key = DEDUPE_KEYS[provider](payload)
    if key:
        return key[:200]
    bucket = timezone.now().strftime("%Y%m%d%H")
    digest = hashlib.sha256(body).hexdigest()
    return f"hash:{bucket}:{digest}"


# -- receiving (the view) --------------------------------------------------------------------

# secret -> (expires at, connection). A per-process cache of the one lookup the endpoint needs:
# a rotated or disabled secret keeps working in a process for at most
# WEBHOOK_CONNECTION_CACHE_SECONDS (0 disables the cache). Unknown secrets are never cached.
_connections: dict[tuple[str, str], tuple[float, PlatformConnection]] = {}


def connection_for_secret(*, provider: str, secret: str) -> PlatformConnection | None:
    import time

    from apps.integrations.selectors import connection_get_by_webhook_secret_all_orgs

    ttl = settings.WEBHOOK_CONNECTION_CACHE_SECONDS
    key = (provider, secret)
    now = time.monotonic()
    if ttl > 0:
        cached = _connections.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
    connection = connection_get_by_webhook_secret_all_orgs(provider=provider, secret=secret)
    if connection is not None and ttl > 0:
        if len(_connections) > 10000:
            _connections.clear()
        _connections[key] = (now + ttl, connection)
    return connection


@dataclass(frozen=True)
class ReceiveResult:
    status: int  # HTTP status to answer
    body: dict
    event_id: int | None = None
    duplicate: bool = False


def _reject(connection: PlatformConnection, body: bytes, message: str) -> ReceiveResult:
    # Kept for inspection in a form the text column accepts (no NUL, no lone surrogate).
    raw = storable(body.decode("utf-8", errors="replace")[: settings.WEBHOOK_REJECTED_BODY_CHARS])
    digest = hashlib.sha256(body).hexdigest()
    try:
        with transaction.atomic():
            event, _created = WebhookEvent.objects.get_or_create(
                connection=connection,
                dedupe_key=f"rejected:{digest}",
                defaults={
                    "org_id": connection.org_id,
                    "provider": connection.provider,
                    "raw_body": raw,
                    "status": WebhookEvent.Status.REJECTED,
                    "error": message[:500],
                },
            )
    except IntegrityError:
        event = None
    return ReceiveResult(
        400,
        {"error": {"code": "invalid_webhook", "message": message}},
        event_id=getattr(event, "pk", None),
    )


def webhook_receive(*, connection: PlatformConnection, body: bytes) -> ReceiveResult:
    """Store one callback body for ``connection`` and enqueue its processing after commit.

    Answers 200 for a stored event, a duplicate (already stored) or a ping; 400 (stored as
    rejected, body truncated) when the body is not JSON or not the platform's shape.
    """
    try:
        payload = load_body(body)  # depth, finite numbers, storable text (validate.py)
    except WebhookRejected as exc:
        return _reject(connection, body, str(exc))
    provider = connection.provider
    if provider == Provider.GEWE and is_ping(payload):
        return ReceiveResult(200, {"ok": True, "ping": True})
    if not isinstance(payload, dict):
        return _reject(connection, body, _("The body must be a JSON object."))
    # Shape check only (cheap): full parsing happens in the worker.
    if provider == Provider.GEWE:
        if not isinstance(_ci(payload, "TypeName"), str):
            return _reject(connection, body, _("Not a GeWe callback: TypeName is missing."))
    elif not _str_id(payload.get("messageType")).isdigit():
        if not payload:
            return ReceiveResult(200, {"ok": True, "ping": True})
        return _reject(connection, body, _("Not an E云管家 callback: messageType is missing."))
    try:
        check_fields(provider, payload)
    except WebhookRejected as exc:
        return _reject(connection, body, str(exc))
    dedupe_key = dedupe_key_for(provider, payload, body)
    event_id = _insert_event(
        connection=connection,
        event_type=event_type_of(provider, payload),
        dedupe_key=dedupe_key,
        payload_json=json.dumps(payload, ensure_ascii=False),
        order_key=order_key_for(provider, payload),
    )
    if event_id is None:
        return ReceiveResult(200, {"ok": True, "duplicate": True}, duplicate=True)
    if transaction.get_connection().in_atomic_block:
        transaction.on_commit(lambda: enqueue_process(event_id))
    else:
        enqueue_process(event_id)
    return ReceiveResult(200, {"ok": True}, event_id=event_id)


_INSERT_SQL = """
INSERT INTO {table} (org_id, connection_id, provider, event_type, dedupe_key, payload,
                     raw_body, status, attempts, error, order_key, created_at, updated_at)
VALUES (%s, %s, %s, %s, %s, {json}, '', 'received', 0, '', %s, %s, %s)
ON CONFLICT (connection_id, dedupe_key) DO NOTHING
RETURNING id
"""


def _insert_event(
    *,
    connection: PlatformConnection,
    event_type: str,
    dedupe_key: str,
    payload_json: str,
    order_key: str = "",
) -> int | None:
    """Store the event in one statement (one round trip, committed at once in autocommit):
    ``INSERT ... ON CONFLICT DO NOTHING RETURNING id``; None when it is a duplicate. The unique
    (connection, dedupe key) constraint decides, whatever the concurrency."""
    from django.db import connection as db

    now = timezone.now()
    sql = _INSERT_SQL.format(
        table=WebhookEvent._meta.db_table,
        json="%s::jsonb" if db.vendor == "postgresql" else "%s",
    )
    with db.cursor() as cursor:
        cursor.execute(
            sql,
            [
                connection.org_id,
                connection.pk,
                connection.provider,
                event_type[:64],
                dedupe_key[:200],
                payload_json,
                order_key[:200],
                now,
                now,
            ],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def enqueue_process(event_id: int, countdown: float = 0.0) -> None:
    from apps.integrations.tasks import webhook_event_process as process_task

    try:
        process_task.apply_async(kwargs={"event_id": event_id}, countdown=countdown)
    except Exception:  # noqa: BLE001 - the row is stored; the recovery task enqueues it again
        logger.exception("webhook: enqueueing event %s failed", event_id)
        # Not on the queue: an expired claim tells the sweep to enqueue it again.
        try:
            WebhookEvent.objects.filter(
                pk=event_id, status=WebhookEvent.Status.RECEIVED, claimed_until__isnull=True
            ).update(claimed_until=timezone.now())
        except Exception:  # noqa: BLE001 - the database is down too; the sweep's last resort
            logger.exception("webhook: marking event %s for the sweep failed", event_id)
