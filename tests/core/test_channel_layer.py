"""The channel layer's receive lets a cancelled consumer go at once (apps/core/channel_layer.py),
against the real Redis the tests run on (PostgreSQL runs: the local Redis; SQLite runs: the
embedded one)."""

from __future__ import annotations

import asyncio
import uuid

from django.conf import settings

from apps.core.channel_layer import CANCEL_GRACE_SECONDS, PromptRedisChannelLayer


class SlowToCancelLayer(PromptRedisChannelLayer):
    """Models what was seen under load: a cancelled read that still takes a while to return."""

    async def _brpop_with_clean(self, index, channel, timeout):
        try:
            return await super()._brpop_with_clean(index, channel, timeout)
        except asyncio.CancelledError:
            await asyncio.sleep(1.0)
            raise


def _layer(cls=PromptRedisChannelLayer) -> PromptRedisChannelLayer:
    return cls(hosts=[settings.REDIS_URL], prefix=f"t{uuid.uuid4().hex[:8]}:")


def test_a_cancelled_receive_returns_without_waiting_for_the_redis_read():
    async def scenario():
        layer = _layer(SlowToCancelLayer)
        leaving = await layer.new_channel()
        staying = await layer.new_channel()
        holder = asyncio.ensure_future(layer.receive(leaving))
        await asyncio.sleep(0.2)  # the leaving socket holds the lock, blocked in BZPOPMIN
        waiter = asyncio.ensure_future(layer.receive(staying))
        await asyncio.sleep(0.05)
        holder.cancel()
        # The consumer waits out the layer's short grace, not the whole slow read.
        await asyncio.wait({holder}, timeout=CANCEL_GRACE_SECONDS + 0.15)
        cancelled_promptly = holder.done() and holder.cancelled()
        # The process's other socket still gets its message after the holder left.
        await layer.send(staying, {"type": "chat.message", "text": "still here"})
        message = await asyncio.wait_for(waiter, 10)
        await layer.flush()
        return cancelled_promptly, message

    cancelled_promptly, message = asyncio.run(scenario())
    assert cancelled_promptly
    assert message == {"type": "chat.message", "text": "still here"}


def test_a_receive_that_is_not_cancelled_returns_the_message():
    async def scenario():
        layer = _layer()
        channel = await layer.new_channel()
        receiving = asyncio.ensure_future(layer.receive(channel))
        await layer.send(channel, {"type": "x.y", "n": 1})
        message = await asyncio.wait_for(receiving, 10)
        await layer.flush()
        return message

    assert asyncio.run(scenario()) == {"type": "x.y", "n": 1}
