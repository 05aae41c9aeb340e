"""The channel layer bounds its blocking read (apps/core/channel_layer.py), so a consumer
cancelled inside it goes within about a second; against the real Redis the tests run on
(PostgreSQL runs: the local Redis; SQLite runs: the embedded one)."""

from __future__ import annotations

import asyncio
import time
import uuid

from django.conf import settings

from apps.core.channel_layer import PromptRedisChannelLayer


def _layer() -> PromptRedisChannelLayer:
    return PromptRedisChannelLayer(hosts=[settings.REDIS_URL], prefix=f"t{uuid.uuid4().hex[:8]}:")


def test_the_blocking_read_is_bounded_by_the_setting():
    assert _layer().brpop_timeout == settings.CHANNELS_BLOCK_SECONDS
    assert settings.CHANNELS_BLOCK_SECONDS <= 1


def test_a_cancelled_receive_goes_and_another_socket_still_gets_its_message():
    async def scenario():
        layer = _layer()
        leaving = await layer.new_channel()
        staying = await layer.new_channel()
        holder = asyncio.ensure_future(layer.receive(leaving))
        await asyncio.sleep(0.2)  # the leaving socket holds the lock, blocked in BZPOPMIN
        waiter = asyncio.ensure_future(layer.receive(staying))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        holder.cancel()
        await asyncio.wait({holder}, timeout=10)
        waited = time.monotonic() - started
        cancelled = holder.done() and holder.cancelled()
        # The process's other socket still gets its message after the holder left.
        await layer.send(staying, {"type": "chat.message", "text": "still here"})
        message = await asyncio.wait_for(waiter, 10)
        await layer.flush()
        return cancelled, waited, message

    cancelled, waited, message = asyncio.run(scenario())
    assert cancelled
    # Generous bound: the read blocks at most CHANNELS_BLOCK_SECONDS, far under Daphne's close
    # timeout; the library's default block was five seconds.
    assert waited < 4
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


def test_receives_from_successive_event_loops_share_one_layer():
    """Tests and sync code call the layer from a fresh loop each time (async_to_sync); a receive
    finished in one loop leaves nothing behind that refuses the next."""
    layer = _layer()

    async def once(n):
        channel = await layer.new_channel()
        receiving = asyncio.ensure_future(layer.receive(channel))
        await asyncio.sleep(0.05)
        await layer.send(channel, {"type": "x.y", "n": n})
        return await asyncio.wait_for(receiving, 10)

    assert [asyncio.run(once(n))["n"] for n in range(3)] == [0, 1, 2]


def _cancel_after(steps: int, coro_fn) -> tuple[bool, bool]:
    """Start ``coro_fn()``, let the loop run ``steps`` times, cancel it; returns whether the
    cancel was requested (the task was still running) and whether the task then ended
    cancelled within half a second (less than one blocking read of the layer)."""

    async def scenario():
        task = asyncio.ensure_future(coro_fn())
        for _ in range(steps):
            await asyncio.sleep(0)
        requested = task.cancel()
        await asyncio.wait({task}, timeout=0.5)
        ended_cancelled = task.done() and task.cancelled()
        if not task.done():  # the bug: the task carries on; stop it for the next round
            task.cancel()
            await asyncio.wait({task}, timeout=5)
        elif not task.cancelled():
            task.result()
        return requested, ended_cancelled

    return scenario()


def test_a_cancellation_during_a_write_is_never_swallowed():
    """On Python 3.11 ``asyncio.wait_for`` (redis-py's write with a socket timeout) drops a
    cancellation that arrives once the write finished: the command then completed as if never
    cancelled. The layer's connections raise it. Every loop step of a command is tried."""
    layer = _layer()

    async def all_steps():
        client = layer.connection(0)
        await client.ping()
        swallowed = []
        for steps in range(12):
            requested, ended_cancelled = await _cancel_after(steps, client.ping)
            if requested and not ended_cancelled:
                swallowed.append(steps)
        # The connection dropped by a cancelled write is replaced: the client still works.
        assert await client.ping() is True
        await layer.flush()
        return swallowed

    assert asyncio.run(all_steps()) == []


def test_a_receive_cancelled_at_any_step_ends_at_once():
    """A consumer's receive cancelled anywhere (taking the lock, reconnecting after another
    receive dropped the connection, sending EVAL or BZPOPMIN, reading) ends without waiting
    for the blocking read: the live shutdown test's lingering monitor consumer."""
    layer = _layer()

    async def all_steps():
        lingered = []
        for steps in range(40):
            channel = await layer.new_channel()
            requested, ended_cancelled = await _cancel_after(
                steps, lambda channel=channel: layer.receive(channel)
            )
            if requested and not ended_cancelled:
                lingered.append(steps)
        await layer.flush()
        return lingered

    assert asyncio.run(all_steps()) == []
