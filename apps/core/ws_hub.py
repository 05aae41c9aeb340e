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
import weakref
from typing import Any

logger = logging.getLogger(__name__)

RETRY_SECONDS = 0.5

_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupHub] = weakref.WeakKeyDictionary()


class GroupHub:
    """Local sockets by group, one channel-layer channel subscribed for all of them."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.groups: dict[str, dict[str, Any]] = {}
        self.channel: str | None = None
        self.task: asyncio.Task | None = None
        # Serialises membership changes with their group_add/group_discard, so a socket that
        # joins while the last one leaves never ends up in a group the hub has left.
        self._lock = asyncio.Lock()

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
            self.groups.setdefault(group, {})[consumer.channel_name] = consumer
            # Every join re-adds: it also renews the membership's expiry in the layer.
            await self.layer.group_add(group, self.channel)

    async def leave(self, group: str, consumer) -> None:
        async with self._lock:
            members = self.groups.get(group)
            if members is None or members.pop(consumer.channel_name, None) is None:
                return
            if members:
                return
            del self.groups[group]
            channel = self.channel
            if not self.groups:
                self._stop()
            if channel is not None:
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
