"""Process-level group fan-out for the WebSocket consumers (``apps.core.ws``).

Each group is a Redis pub/sub channel (``hub_channel``). A push is one ``PUBLISH`` per group
(``publish``), with the event's JSON encoded once by the publisher (``realtime.channel_message``).
Each process's hub subscribes once to every group that has a local socket, keeps the local
sockets of each group in memory, and hands every message to them in one loop: no per-socket
Redis work, no per-socket task wake-ups, and the JSON goes out to each socket as is.

Why not the channel layer's groups (the previous transport): channels-redis's ``group_send``
makes four sequential Redis round trips (expire the group, read it, expire each channel, a Lua
script), and the receiving process reads through a lock shared with every socket's own
``receive``. On a loaded machine each round trip can wait for the CPU; ``bench/ws`` measured
the publisher-to-first-send time at several times the raw ``PUBLISH`` -> ``SUBSCRIBE`` one.
Pub/sub is that raw path. It delivers what is published while the subscription is open, which
is what the layer's groups gave a live socket too (pushes are hints; clients catch up with
``sync`` after a reconnect). The layer itself still carries each socket's own channel.

Tenancy is unchanged: a socket is in the hub's list of a group only after it passed the same
checks that made it join the group before (``RealtimeConsumer``), group names carry the
organisation, and the pub/sub channel also names the channel layer's prefix and the Redis
database (pub/sub channels are shared by every database of a server, unlike keys). Messages are
routed by the channel they arrive on; the ``group`` in the payload must match it.

One hub per event loop (Daphne runs one; tests run one per test). It unsubscribes when a group's
last local socket leaves and closes its connections when the last socket leaves. When a
subscription's connection breaks, redis-py reconnects and subscribes again; messages published
in between are lost, so the hub then closes its sockets with 4503 and the clients reconnect and
catch up with ``sync``.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

logger = logging.getLogger(__name__)

RETRY_SECONDS = 0.5
SUBSCRIBE_TIMEOUT_SECONDS = 5.0
# The close code after a subscription gap (``ws.CloseCode.RESUBSCRIBED``): reconnect and catch
# up. An application code: Daphne's WebSocket library only lets the server send 1000 or
# 3000-4999.
SERVICE_RESTART = 4503

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupHub] = weakref.WeakKeyDictionary()


_databases: weakref.WeakKeyDictionary[Any, dict[int, int]] = weakref.WeakKeyDictionary()


def hub_channel(layer, group: str) -> str:
    """The pub/sub channel of ``group`` on ``layer`` (prefix and Redis database included)."""
    index = layer.consistent_hash(group)
    known = _databases.setdefault(layer, {})
    db = known.get(index)
    if db is None:
        # A pool object only (no connection): it parses the host's address and options.
        db = known[index] = int(layer.create_pool(index).connection_kwargs.get("db") or 0)
    return f"{layer.prefix}:hub:{db}:{group}"


async def publish(layer, group: str, message: dict[str, Any]) -> int:
    """Send ``message`` to the hubs subscribed to ``group``; returns how many processes got it."""
    connection = layer.connection(layer.consistent_hash(group))
    return await connection.publish(
        hub_channel(layer, group), layer.serialize({**message, "group": group})
    )


class _Subscription:
    """One pub/sub connection (per Redis shard of the layer) and the task that reads it."""

    def __init__(self, pubsub) -> None:
        self.pubsub = pubsub
        self.task: asyncio.Task | None = None
        self.confirmed: dict[str, asyncio.Future] = {}
        # SUBSCRIBE commands sent per channel and not confirmed yet: a confirmation beyond them
        # is redis-py subscribing again after a reconnect.
        self.pending: dict[str, int] = {}


class GroupHub:
    """Local sockets by group, one pub/sub subscription per group for all of them."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.groups: dict[str, dict[str, Any]] = {}
        self._group_of: dict[str, str] = {}  # pub/sub channel -> group
        self._subscriptions: dict[int, _Subscription] = {}
        self._restart_scheduled = False
        # Membership changes and the (un)subscribe commands they send are atomic under
        # ``_lock``: commands go out in order on one connection, so a socket joining while the
        # group's last one leaves always ends subscribed. Only the wait for Redis's
        # confirmation happens outside it.
        self._lock = asyncio.Lock()

    async def join(self, group: str, consumer) -> None:
        async with self._lock:
            channel = hub_channel(self.layer, group)
            subscription = self._subscription(self.layer.consistent_hash(group))
            members = self.groups.setdefault(group, {})
            first = not members
            members[consumer.channel_name] = consumer
            self._group_of[channel] = group
            confirmed = subscription.confirmed.get(channel)
            if first or confirmed is None:
                confirmed = subscription.confirmed[channel] = (
                    asyncio.get_running_loop().create_future()
                )
                subscription.pending[channel] = subscription.pending.get(channel, 0) + 1
                try:
                    await subscription.pubsub.subscribe(channel)
                except BaseException:
                    subscription.confirmed.pop(channel, None)
                    subscription.pending[channel] -= 1
                    if not subscription.pending[channel]:
                        del subscription.pending[channel]
                    self._forget(group, consumer)
                    raise
                if subscription.task is None or subscription.task.done():
                    subscription.task = asyncio.create_task(self._read(subscription))
        try:
            # Only once Redis confirmed may the socket hear "connection_established": a push
            # made after that reaches it.
            await asyncio.wait_for(asyncio.shield(confirmed), SUBSCRIBE_TIMEOUT_SECONDS)
        except BaseException:
            await self.leave(group, consumer)
            raise

    async def leave(self, group: str, consumer) -> None:
        async with self._lock:
            if not self._forget(group, consumer):
                return
            if group in self.groups:
                return
            subscription = self._subscriptions.get(self.layer.consistent_hash(group))
            if subscription is None:
                return
            channel = hub_channel(self.layer, group)
            subscription.confirmed.pop(channel, None)
            self._group_of.pop(channel, None)
            if not self.groups:
                await self._stop()
                return
            await subscription.pubsub.unsubscribe(channel)

    def members(self, group: str) -> int:
        return len(self.groups.get(group, ()))

    def subscribed(self) -> set[str]:
        """The pub/sub channels this hub is subscribed to (for tests and diagnostics)."""
        return {
            channel
            for subscription in self._subscriptions.values()
            for channel, confirmed in subscription.confirmed.items()
            if confirmed.done() and not confirmed.cancelled()
        }

    def _forget(self, group: str, consumer) -> bool:
        members = self.groups.get(group)
        if members is None or members.pop(consumer.channel_name, None) is None:
            return False
        if not members:
            del self.groups[group]
        return True

    def _subscription(self, index: int) -> _Subscription:
        subscription = self._subscriptions.get(index)
        if subscription is None:
            pubsub = self.layer.connection(index).pubsub()
            subscription = self._subscriptions[index] = _Subscription(pubsub)
        return subscription

    async def _stop(self) -> None:
        subscriptions, self._subscriptions = list(self._subscriptions.values()), {}
        self._group_of = {}
        for subscription in subscriptions:
            for confirmed in subscription.confirmed.values():
                confirmed.cancel()
            if subscription.task is not None and subscription.task is not asyncio.current_task():
                subscription.task.cancel()
            try:
                await subscription.pubsub.aclose()
            except Exception:  # noqa: BLE001 - the connection is being dropped anyway.
                logger.debug("Closing a realtime hub subscription failed", exc_info=True)

    async def _read(self, subscription: _Subscription) -> None:
        pubsub = subscription.pubsub
        while True:
            try:
                message = await pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis hiccup: keep serving once it is back.
                logger.warning("Realtime hub subscription failed", exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                await self._dispatch(message["channel"], message["data"])
            elif kind == "subscribe":
                self._confirm(subscription, message["channel"])

    def _confirm(self, subscription: _Subscription, channel: bytes | str) -> None:
        channel = channel.decode() if isinstance(channel, bytes) else channel
        confirmed = subscription.confirmed.get(channel)
        pending = subscription.pending.pop(channel, 0)
        if pending > 1:
            subscription.pending[channel] = pending - 1  # a later SUBSCRIBE is still on its way
            return
        if confirmed is None or confirmed.cancelled():
            return
        if pending:
            if not confirmed.done():
                confirmed.set_result(True)
        elif confirmed.done() and not self._restart_scheduled:
            # Confirmed before: redis-py reconnected and subscribed again. What was published
            # in between is lost; the clients reconnect and catch up.
            self._restart_scheduled = True
            asyncio.get_running_loop().call_soon(self._restart_sockets)

    async def _dispatch(self, channel: bytes | str, data: bytes) -> None:
        channel = channel.decode() if isinstance(channel, bytes) else channel
        group = self._group_of.get(channel)
        members = self.groups.get(group) if group is not None else None
        if not members:
            return
        try:
            message = self.layer.deserialize(data)
        except Exception:  # noqa: BLE001 - a foreign or corrupt payload must not stop the hub.
            logger.warning("Realtime hub dropped an unreadable message on %s", channel)
            return
        if message.get("group") != group:
            return  # a payload naming another group than the channel it came on
        for consumer in list(members.values()):
            try:
                await consumer.deliver(message)
            except Exception:  # noqa: BLE001 - one socket's failure must not stop the others.
                logger.exception("Realtime delivery to %s failed", consumer.channel_name)

    def _restart_sockets(self) -> None:
        self._restart_scheduled = False
        consumers = {id(c): c for members in self.groups.values() for c in members.values()}
        logger.warning(
            "Realtime hub resubscribed after a gap: closing %d sockets to catch up", len(consumers)
        )
        for consumer in consumers.values():
            asyncio.create_task(consumer.close_with(SERVICE_RESTART))


def hub_for(layer) -> GroupHub:
    """The running loop's hub on ``layer`` (created on first use)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = GroupHub(layer)
    return hub
