"""Shared machinery of every WebSocket consumer: authentication, organisation, limits, heartbeat.

Lifecycle of a socket (``RealtimeConsumer``):

1. The handshake is accepted at once (a close code can only be sent on an accepted socket).
2. Authentication with a JWT access token from ``?token=``, or from the first client message
   ``{"type": "auth", "data": {"token": "..."}}`` within ``WS_AUTH_TIMEOUT_SECONDS``.
3. The organisation from ``?org=<slug or id>`` (or ``data.org`` of the auth message), else the
   user's default; the user must be a member with at least the endpoint's ``minimum_role``.
4. The endpoint's own check (``authorize()``, e.g. the conversation exists in that org).
5. A slot in the per-user connection limit (Redis lease, see ``apps.core.ws_registry``).
6. Only then the socket joins its groups and gets ``connection_established``; nothing is ever
   delivered to a socket that failed a check.

Afterwards the server sends ``ping`` every ``WS_HEARTBEAT_INTERVAL_SECONDS`` and closes a socket
that sent nothing for ``WS_HEARTBEAT_TIMEOUT_SECONDS``; a client ``ping`` gets ``pong``. A
malformed or unknown client message gets an ``error`` event, never a disconnect.

Every event has the envelope ``{"type", "data", "ts", "id"}`` (``apps.core.realtime``).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import os
import random
import socket
import uuid
from collections import deque
from enum import IntEnum
from typing import Any
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.core import logcontext, realtime, ws_hub, ws_registry
from apps.orgs.models import Role, role_at_least

logger = logging.getLogger(__name__)


class CloseCode(IntEnum):
    """Application close codes (4000-4999) every endpoint uses."""

    DISCONNECTED_BY_ADMIN = 4000
    UNAUTHENTICATED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    HEARTBEAT_TIMEOUT = 4408
    TOO_MANY_CONNECTIONS = 4429
    SERVER_ERROR = 4500  # Daphne lets a server send only 1000 or 3000-4999, not 1011
    RESUBSCRIBED = ws_hub.SERVICE_RESTART


# The documented table (README and the management API's docs render it).
CLOSE_CODES: dict[int, str] = {
    CloseCode.DISCONNECTED_BY_ADMIN: "Disconnected by an owner/admin (management API).",
    CloseCode.UNAUTHENTICATED: (
        "Missing, invalid or expired JWT access token, inactive user, or no auth message "
        "within WS_AUTH_TIMEOUT_SECONDS."
    ),
    CloseCode.FORBIDDEN: (
        "Not a member of the requested organisation, or role below the endpoint's minimum "
        "(/ws/admin/monitor/ needs manager)."
    ),
    CloseCode.NOT_FOUND: "The conversation does not exist or belongs to another organisation.",
    CloseCode.HEARTBEAT_TIMEOUT: "No message from the client for WS_HEARTBEAT_TIMEOUT_SECONDS.",
    CloseCode.TOO_MANY_CONNECTIONS: (
        "The user already has WS_MAX_CONNECTIONS_PER_USER live connections (all processes)."
    ),
    CloseCode.SERVER_ERROR: "The server failed while serving the socket; reconnect.",
    CloseCode.RESUBSCRIBED: (
        "The server's subscription to Redis broke and was renewed: reconnect, then sync what "
        "was missed."
    ),
}

_SERVER = f"{socket.gethostname()}:{os.getpid()}"
_NO_DB_HOP_TYPES = frozenset(
    {realtime.CHANNEL_MESSAGE_TYPE, realtime.CHANNEL_CONTROL_TYPE, "websocket.receive"}
)


class ClientError(Exception):
    """A client message that cannot be served; answered with an ``error`` event."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Refused(Exception):
    """Raised by ``authorize()`` to close the socket with ``code``."""

    def __init__(self, code: CloseCode) -> None:
        super().__init__(int(code))
        self.code = code


@database_sync_to_async
def _user_from_token(raw: str):
    """The active user of a valid access token, else None."""
    from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken

    from apps.core.jwt import FamilyJWTAuthentication

    auth = FamilyJWTAuthentication()
    try:
        validated = auth.get_validated_token(raw.encode() if isinstance(raw, str) else raw)
        return auth.get_user(validated)
    except (InvalidToken, AuthenticationFailed):
        return None


@database_sync_to_async
def _membership(user, requested: str | None):
    from apps.core.tenancy import resolve_membership

    try:
        return resolve_membership(user, requested)
    except (Http404, ValueError):
        return None


def _setting(name: str) -> float:
    return float(getattr(settings, name))


class RealtimeConsumer(AsyncWebsocketConsumer):
    """Base of every endpoint. Subclasses set ``endpoint`` and ``minimum_role`` and may override
    ``authorize()``, ``initial_groups()``, ``after_connect()``, ``accepts_event()``, ``describe()``
    and add ``handle_<type>(data)`` methods for client messages."""

    endpoint: str = ""
    minimum_role: str = Role.VIEWER

    # --- connection ---------------------------------------------------------------------------

    async def connect(self) -> None:
        self.conn_id = uuid.uuid4().hex
        self.user = None
        self.org = None
        self.membership = None
        self.ready = False
        self.closing = False
        self.registered = False
        self.joined_groups: set[str] = set()
        self.counters = ws_registry.Counters()
        self._seen_event_ids: deque[str] = deque(maxlen=256)
        self._tasks: list[asyncio.Task] = []
        # Group messages waiting behind one that needs a database lookup (``deliver``), and the
        # context (this socket's task's) such deliveries run in.
        self._backlog: deque[dict[str, Any]] | None = None
        self._context = contextvars.copy_context()
        self._authenticating = False
        self.connected_at = timezone.now()
        self.last_seen = self._now()
        self.query = {
            k: v[-1] for k, v in parse_qs(self.scope.get("query_string", b"").decode()).items()
        }

        logcontext.reset(request_id=f"ws-{self.conn_id[:16]}")  # this socket's task only
        await self.accept()
        token = self.query.get("token")
        if token:
            await self._authenticate(token, self.query.get("org"))
        else:
            self._tasks.append(asyncio.create_task(self._auth_deadline()))

    async def disconnect(self, code: int) -> None:
        await self._cleanup()

    async def close_with(self, code: int) -> None:
        """Close with an application code and free everything at once (not only on the
        ``websocket.disconnect`` that follows, which a dead peer may delay)."""
        if self.closing:
            return
        self.closing = True
        await self.close(code=int(code))
        await self._cleanup()

    async def _cleanup(self) -> None:
        self.ready = False
        self.closing = True
        current = asyncio.current_task()
        for task in self._tasks:
            if task is not current:
                task.cancel()
        self._tasks = []
        for group in list(self.joined_groups):
            await self._discard(group)
        if self.registered:
            self.registered = False
            try:
                remaining = await ws_registry.unregister(
                    org_id=self.org.id,
                    user_id=self.user.id,
                    conn_id=self.conn_id,
                    counters=self.counters,
                )
            except Exception:  # noqa: BLE001 - the lease expires by itself if Redis is down.
                logger.warning("Could not release WebSocket slot %s", self.conn_id, exc_info=True)
                remaining = 1
            if remaining == 0:
                await self._announce_presence("offline")

    # --- authentication -----------------------------------------------------------------------

    async def _auth_deadline(self) -> None:
        await asyncio.sleep(_setting("WS_AUTH_TIMEOUT_SECONDS"))
        if not self.ready and not self._authenticating and not self.closing:
            await self.close_with(CloseCode.UNAUTHENTICATED)

    async def _authenticate(self, token: Any, requested_org: Any) -> None:
        self._authenticating = True
        try:
            await self._do_authenticate(token, requested_org)
        finally:
            self._authenticating = False

    async def _do_authenticate(self, token: Any, requested_org: Any) -> None:
        if not isinstance(token, str) or not token:
            await self.close_with(CloseCode.UNAUTHENTICATED)
            return
        user = await _user_from_token(token)
        if user is None:
            await self.close_with(CloseCode.UNAUTHENTICATED)
            return
        requested = str(requested_org) if requested_org not in (None, "") else None
        membership = await _membership(user, requested)
        if membership is None or not role_at_least(membership.role, self.minimum_role):
            await self.close_with(CloseCode.FORBIDDEN)
            return
        self.user, self.membership, self.org = user, membership, membership.org
        logcontext.bind(user_id=user.id, org_id=membership.org_id)
        try:
            await self.authorize()
        except Refused as refused:
            await self.close_with(refused.code)
            return
        if self.closing:  # the auth deadline fired meanwhile
            return
        allowed, count = await ws_registry.register(
            org_id=self.org.id,
            user_id=self.user.id,
            conn_id=self.conn_id,
            info=self.describe(),
            limit=int(settings.WS_MAX_CONNECTIONS_PER_USER),
        )
        if not allowed:
            await self.close_with(CloseCode.TOO_MANY_CONNECTIONS)
            return
        self.registered = True
        if self.closing:  # closed while registering: give the slot back
            await self._cleanup()
            return
        for group in self.initial_groups():
            await self._add(group)
        self.ready = True
        await self.send_event(
            "connection_established",
            {
                "connection_id": self.conn_id,
                "endpoint": self.endpoint,
                "user_id": self.user.id,
                "org_id": self.org.id,
                "role": self.membership.role,
                "heartbeat_interval": _setting("WS_HEARTBEAT_INTERVAL_SECONDS"),
                "heartbeat_timeout": _setting("WS_HEARTBEAT_TIMEOUT_SECONDS"),
            },
        )
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        if count == 1:
            await self._announce_presence("online")
        await self.after_connect()

    # --- hooks --------------------------------------------------------------------------------

    async def authorize(self) -> None:
        """Endpoint-specific check after the membership check; raise ``Refused`` to close."""

    def initial_groups(self) -> list[str]:
        return [
            realtime.group_for_user(self.org.id, self.user.id),
            realtime.group_for_org(self.org.id),
        ]

    async def after_connect(self) -> None:
        """Runs once the socket is ready (e.g. send the joined conversation)."""

    def accepts_event(self, event: dict[str, Any]) -> bool:
        return True

    def describe(self) -> dict[str, Any]:
        """What the management API shows about this connection (stored in Redis)."""
        return {
            "user_id": self.user.id,
            "org_id": self.org.id,
            "endpoint": self.endpoint,
            "conversation_ids": [],
            "connected_at": self.connected_at.isoformat(),
            "last_seen_at": timezone.now().isoformat(),
            "server": _SERVER,
            "client": ":".join(str(part) for part in self.scope.get("client") or ()),
        }

    # --- heartbeat ----------------------------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time()

    async def _heartbeat(self) -> None:
        interval = _setting("WS_HEARTBEAT_INTERVAL_SECONDS")
        timeout = _setting("WS_HEARTBEAT_TIMEOUT_SECONDS")
        # The first ping is jittered so sockets opened together (a reconnect storm) don't ping
        # and renew their leases in lockstep afterwards.
        next_ping = self._now() + interval * random.uniform(0.5, 1.0)  # noqa: S311
        try:
            while not self.closing:
                deadline = self.last_seen + timeout
                await asyncio.sleep(max(0.0, min(next_ping, deadline) - self._now()))
                now = self._now()
                if now >= self.last_seen + timeout:
                    await self.close_with(CloseCode.HEARTBEAT_TIMEOUT)
                    return
                if now >= next_ping:
                    next_ping = now + interval
                    await self.send_event("ping", {})
                    await self.refresh_lease()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a broken heartbeat must not leave a zombie socket.
            logger.exception("WebSocket heartbeat of %s failed", self.conn_id)
            await self.close_with(CloseCode.SERVER_ERROR)

    async def refresh_lease(self) -> None:
        if not self.registered:
            return
        try:
            await ws_registry.refresh(
                org_id=self.org.id,
                user_id=self.user.id,
                conn_id=self.conn_id,
                info=self.describe(),
                counters=self.counters,
            )
        except Exception:  # noqa: BLE001 - retried at the next heartbeat.
            logger.warning("Could not renew WebSocket lease %s", self.conn_id, exc_info=True)

    # --- receiving ----------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        self.last_seen = self._now()
        if self.closing:
            return
        self.counters.messages_in += 1
        content: Any = None
        if text_data is not None:
            try:
                content = json.loads(text_data)
            except ValueError:
                content = None
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            if not self.ready and not self._authenticating:
                await self.close_with(CloseCode.UNAUTHENTICATED)
                return
            await self.send_error("malformed", _('Expected a JSON object with a "type".'))
            return
        message_type = content["type"]
        data = content.get("data", {})
        if data is None:
            data = {}
        if not self.ready:
            if self._authenticating:
                return  # ignore chatter while the ?token= check runs
            if message_type != "auth" or not isinstance(data, dict):
                await self.close_with(CloseCode.UNAUTHENTICATED)
                return
            token = data.get("token") or content.get("token")
            await self._authenticate(token, data.get("org") or self.query.get("org"))
            return
        if not isinstance(data, dict):
            await self.send_error("malformed", _('"data" must be an object.'))
            return
        handler = (
            getattr(self, f"handle_{message_type}", None) if message_type.isidentifier() else None
        )
        if handler is None:
            await self.send_error(
                "unknown_type",
                _("Unknown message type: %(type)s") % {"type": message_type[:50]},
            )
            return
        try:
            await handler(data)
        except ClientError as exc:
            await self.send_error(exc.code, exc.message)
        except Exception:  # noqa: BLE001 - one bad message must not kill the socket.
            logger.exception("WebSocket message %s failed on %s", message_type, self.conn_id)
            await self.send_error("internal_error", _("The message could not be processed."))

    async def handle_ping(self, data: dict[str, Any]) -> None:
        await self.send_event("pong", {})

    async def handle_pong(self, data: dict[str, Any]) -> None:
        """Liveness is already recorded by ``receive``."""

    async def handle_auth(self, data: dict[str, Any]) -> None:
        raise ClientError("already_authenticated", _("This connection is already authenticated."))

    # --- sending ------------------------------------------------------------------------------

    async def send_event(self, event_type: str, data: dict[str, Any]) -> None:
        await self.send_envelope(realtime.make_envelope(event_type, data))

    async def send_envelope(self, envelope: dict[str, Any], *, text: str | None = None) -> None:
        """Send an event; ``text`` is its JSON when the publisher already encoded it (a push
        is encoded once, not once per socket)."""
        if self.closing:
            return
        self.counters.messages_out += 1
        try:
            await self.send(text_data=text if isinstance(text, str) else json.dumps(envelope))
        except Exception:  # noqa: BLE001 - the peer went away mid-send; disconnect follows.
            logger.debug("Send on closed socket %s", self.conn_id)
            self.closing = True

    async def send_error(self, code: str, message: str) -> None:
        self.counters.errors += 1
        await self.send_event("error", {"code": code, "message": str(message)})

    # --- channel-layer handlers ---------------------------------------------------------------

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels runs ``close_old_connections`` in a worker thread before *every* message.
        Pushes (``realtime.*``) and client messages (pongs, joins) reach the database only
        through ``database_sync_to_async``, which closes stale connections itself: skipping
        that thread hop is what lets one event reach 50 sockets in milliseconds (``bench/ws``:
        it was two hops per socket and per pong, serialised on one thread)."""
        if message.get("type") in _NO_DB_HOP_TYPES:
            await getattr(self, get_handler_name(message))(message)
            return
        await super().dispatch(message)

    async def realtime_event(self, message: dict[str, Any]) -> None:
        if not self.ready or self.closing:
            return
        if self.user and message.get("exclude_user_id") == self.user.id:
            return
        event = message.get("event") or {}
        event_id = event.get("id")
        if event_id:
            # The same push may reach this socket through two groups (org inbox + conversation).
            if event_id in self._seen_event_ids:
                return
            self._seen_event_ids.append(event_id)
        if not self.accepts_event(event):
            return
        await self.send_envelope(event, text=message.get("text"))

    async def realtime_control(self, message: dict[str, Any]) -> None:
        if not self.ready or self.closing:
            return
        if message.get("action") == "disconnect":
            target = message.get("connection_id")
            if target in (None, "", self.conn_id):
                await self.close_with(CloseCode.DISCONNECTED_BY_ADMIN)

    # --- groups and presence ------------------------------------------------------------------

    # Groups are joined through the process's hub (apps.core.ws_hub): one layer subscription
    # per process and group, the hub hands each message to the local sockets by ``deliver``.

    async def _add(self, group: str) -> None:
        await ws_hub.hub_for(self.channel_layer).join(group, self)
        self.joined_groups.add(group)

    async def _discard(self, group: str) -> None:
        self.joined_groups.discard(group)
        try:
            await ws_hub.hub_for(self.channel_layer).leave(group, self)
        except Exception:  # noqa: BLE001 - group membership expires in the layer by itself.
            logger.warning("Could not leave group %s", group, exc_info=True)

    def needs_lookup(self, message: dict[str, Any]) -> bool:
        """Whether delivering ``message`` may query the database (e.g. a visibility rule)."""
        return False

    async def deliver(self, message: dict[str, Any]) -> None:
        """A group message handed over by the hub (instead of this socket's own channel).

        Runs inline in the hub's loop, except a message that needs a database lookup: that one
        (and every later one, to keep this socket's order) runs in a task with this socket's
        own context, as channel messages did, so the hub never waits for a query."""
        if self._backlog is not None:
            self._backlog.append(message)
            return
        if self.needs_lookup(message):
            self._backlog = deque([message])
            task = asyncio.create_task(self._drain_backlog(), context=self._context)
            self._tasks.append(task)
            task.add_done_callback(lambda done: done in self._tasks and self._tasks.remove(done))
            return
        await self._handle_group_message(message)

    async def _drain_backlog(self) -> None:
        try:
            while self._backlog:
                await self._handle_group_message(self._backlog.popleft())
        finally:
            self._backlog = None

    async def _handle_group_message(self, message: dict[str, Any]) -> None:
        if message.get("type") == realtime.CHANNEL_MESSAGE_TYPE:
            await self.realtime_event(message)
        elif message.get("type") == realtime.CHANNEL_CONTROL_TYPE:
            await self.realtime_control(message)

    async def _announce_presence(self, status: str) -> None:
        await realtime.apush(
            "user_status_update",
            {
                "user_id": self.user.id,
                "name": self.user.get_full_name(),
                "status": status,
            },
            groups=[realtime.group_for_org(self.org.id)],
        )
