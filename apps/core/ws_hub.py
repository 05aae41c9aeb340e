"""Process-level group fan-out for the WebSocket consumers (``apps.core.ws``).

Channels' own groups put every socket's channel in the group: one event to an organisation of
50 members woke 50 consumer tasks, each through the channel layer's receive machinery (two
helper tasks and a cancellation per message) and Channels' dispatch. The hub subscribes *one*
channel per process to each group that has a local socket, keeps the local sockets of each group
in memory, and hands every message to them in one loop: no per-socket Redis work, no per-socket
task wake-ups, and the event's JSON (encoded once by the publisher, ``realtime.channel_message``)
goes out to each socket as is.

Tenancy is unchanged: a socket is in the hub's list of a group only after it passed the same
checks that made it join the group before (``RealtimeConsumer``), and group names carry the
organisation. Messages are routed by the ``group`` the publisher puts in them
(``realtime.push``/``apush``/``send_control``); a message without one is not delivered.

One hub per event loop (Daphne runs one; tests run one per test). It stops, and leaves the
layer's groups, when its last socket leaves.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

logger = logging.getLogger(__name__)

RETRY_SECONDS = 0.5
# Re-add the hub's channel to a group at a join after this long (the layer's group expiry is a
# day; channels-redis drops older members at the next group_send).
GROUP_REFRESH_SECONDS = 3600.0

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupHub] = weakref.WeakKeyDictionary()


class GroupHub:
    """Local sockets by group, one channel-layer channel subscribed for all of them."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.groups: dict[str, dict[str, Any]] = {}
        self.channel: str | None = None
        self.task: asyncio.Task | None = None
        # Membership changes are atomic under ``_lock`` (no Redis I/O held there but the first
        # channel); each group's group_add/group_discard is ordered by its own lock, so a
        # socket joining while the group's last one leaves never ends up unsubscribed, and
        # 2,000 sockets leaving at once do not queue behind each other's Redis round trips.
        self._lock = asyncio.Lock()
        self._group_locks: dict[str, asyncio.Lock] = {}
        self._added_at: dict[str, tuple[str, float]] = {}

    async def join(self, group: str, consumer) -> None:
        async with self._lock:
            if self.channel is not None and (self.task is None or self.task.done()):
                # The loop ended unexpectedly: serve the same subscription again.
                self.task = asyncio.create_task(self._receive(self.channel))
            if self.channel is None:
                # The default prefix: the layer reads one Redis key for all of a process's
                # channels with that prefix (the hub's and the sockets' own).
                self.channel = await self.layer.new_channel()
                self.task = asyncio.create_task(self._receive(self.channel))
            channel = self.channel
            self.groups.setdefault(group, {})[consumer.channel_name] = consumer
            group_lock = self._group_locks.setdefault(group, asyncio.Lock())
        async with group_lock:
            now = time.monotonic()
            added_channel, added_at = self._added_at.get(group, (None, 0.0))
            if added_channel != channel or now - added_at >= GROUP_REFRESH_SECONDS:
                # First local member (or an old subscription: renew it before the layer's
                # group expiry drops it).
                await self.layer.group_add(group, channel)
                self._added_at[group] = (channel, now)

    async def leave(self, group: str, consumer) -> None:
        async with self._lock:
            members = self.groups.get(group)
            if members is None or members.pop(consumer.channel_name, None) is None:
                return
            if members:
                return
            del self.groups[group]
            channel = self.channel
            group_lock = self._group_locks.setdefault(group, asyncio.Lock())
            if not self.groups:
                self._stop()
        async with group_lock:
            if group in self.groups or channel is None:
                return  # a socket joined again meanwhile: stay subscribed
            if self._added_at.get(group, (None,))[0] == channel:
                del self._added_at[group]
            await self.layer.group_discard(group, channel)

    def members(self, group: str) -> int:
        return len(self.groups.get(group, ()))

    def _stop(self) -> None:
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()
        self.task = None
        self.channel = None

    async def _receive(self, channel: str) -> None:
        while self.channel == channel:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - Redis hiccup: keep serving once it is back.
                logger.warning("Realtime hub receive on %s failed", channel, exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            members = self.groups.get(message.get("group"))
            if not members:
                continue
            for consumer in list(members.values()):
                try:
                    await consumer.deliver(message)
                except Exception:  # noqa: BLE001 - one socket's failure must not stop the others.
                    logger.exception("Realtime delivery to %s failed", consumer.channel_name)


def hub_for(layer) -> GroupHub:
    """The running loop's hub on ``layer`` (created on first use)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None or hub.layer is not layer:
        hub = _hubs[loop] = GroupHub(layer)
    return hub
