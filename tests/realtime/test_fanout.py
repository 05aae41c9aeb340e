"""Fan-out through the process hub (apps/core/ws_hub.py): one layer subscription per process
and group, every local member served from it, nothing to another organisation; pushes encoded
once; realtime messages without Channels' per-message database hop; the ASGI GC tuning."""

from __future__ import annotations

import asyncio
import gc
import json

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from apps.core import gc_tuning, realtime, ws_hub
from apps.orgs.models import Role
from tests.realtime.conftest import drain, receive_until, ws_open

pytestmark = pytest.mark.django_db


def run(coro_fn):
    return async_to_sync(coro_fn)()


async def _layer_members(group: str) -> list[str]:
    layer = get_channel_layer()
    connection = layer.connection(layer.consistent_hash(group))
    return [m.decode() for m in await connection.zrange(layer._group_key(group), 0, -1)]


def test_one_subscription_per_process_serves_every_member_and_no_other_org(
    org, member, make_member, outsider, other_org
):
    agent = make_member(Role.AGENT)
    org_group = realtime.group_for_org(org.id)

    async def scenario():
        a, _ = await ws_open("/ws/chat/", user=member)
        b, _ = await ws_open("/ws/chat/", user=agent)
        theirs, _ = await ws_open("/ws/chat/", user=outsider)
        for comm in (a, b, theirs):
            await drain(comm, 0.1)
        hub = ws_hub.hub_for(get_channel_layer())
        # Two local sockets, one channel in the layer's group: the hub's.
        assert hub.members(org_group) == 2
        subscribed = await _layer_members(org_group)
        assert hub.channel in subscribed
        assert not set(hub.groups[org_group]) & set(subscribed)  # no socket's own channel
        channel = hub.channel

        assert await realtime.apush("bench", {"n": 1}, groups=[org_group])
        for comm in (a, b):
            event = await receive_until(comm, "bench")
            assert event["data"] == {"n": 1}
        assert [e for e in await drain(theirs, 0.3) if e["type"] == "bench"] == []

        for comm in (a, b, theirs):
            await comm.disconnect()
        # The last local socket gone, the hub left the group and stopped.
        assert hub.members(org_group) == 0
        assert channel not in await _layer_members(org_group)
        assert hub.task is None

    run(scenario)


def test_user_group_reaches_only_that_users_sockets(org, member, make_member):
    agent = make_member(Role.AGENT)

    async def scenario():
        mine, _ = await ws_open("/ws/chat/", user=member)
        other, _ = await ws_open("/ws/chat/", user=agent)
        await drain(mine, 0.1)
        await drain(other, 0.1)
        await realtime.apush(
            "notification", {"id": 5}, groups=[realtime.group_for_user(org.id, member.id)]
        )
        assert (await receive_until(mine, "notification"))["data"] == {"id": 5}
        assert [e for e in await drain(other, 0.3) if e["type"] == "notification"] == []
        await mine.disconnect()
        await other.disconnect()

    run(scenario)


def test_a_push_is_encoded_once_and_names_its_group():
    envelope = realtime.make_envelope("new_message", {"id": 1, "text": "你好"})
    message = realtime.channel_message(envelope)
    assert message["type"] == realtime.CHANNEL_MESSAGE_TYPE
    assert json.loads(message["text"]) == envelope

    sent = []

    class Layer:
        async def group_send(self, group, message):
            sent.append((group, message))

    asyncio.run(realtime._group_send_all(Layer(), ["org.1.all", "org.1.user.2"], message))
    assert [(group, m["group"]) for group, m in sent] == [
        ("org.1.all", "org.1.all"),
        ("org.1.user.2", "org.1.user.2"),
    ]
    assert all(m["text"] is message["text"] for _, m in sent)


def test_realtime_messages_skip_channels_database_hop(org, member, monkeypatch):
    hops = []

    async def counting_close():
        hops.append(1)

    monkeypatch.setattr("channels.consumer.aclose_old_connections", counting_close)

    async def scenario():
        comm, first = await ws_open("/ws/chat/", user=member)
        await drain(comm, 0.1)
        hub = ws_hub.hub_for(get_channel_layer())
        [consumer] = hub.groups[realtime.group_for_user(org.id, member.id)].values()
        before = len(hops)
        # A message on the socket's own channel goes through dispatch: no hop for realtime.*.
        message = realtime.channel_message(realtime.make_envelope("direct", {"n": 2}))
        await get_channel_layer().send(consumer.channel_name, message)
        assert (await receive_until(comm, "direct"))["data"] == {"n": 2}
        assert len(hops) == before
        await comm.disconnect()

    run(scenario)


def test_gc_tuning_freezes_survivors_and_can_be_switched_off():
    assert gc_tuning.install(freeze_seconds=0, full_seconds=0) is False
    try:
        gc_tuning.freeze_now(full=True)
        assert gc.get_freeze_count() > 0
        gc_tuning.freeze_now(full=False)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
