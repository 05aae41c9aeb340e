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


async def _subscribers(group: str) -> int:
    """Redis's count of pub/sub subscriptions to ``group``'s hub channel (all processes)."""
    layer = get_channel_layer()
    connection = layer.connection(layer.consistent_hash(group))
    [(_, count)] = await connection.pubsub_numsub(ws_hub.hub_channel(layer, group))
    return count


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
        # Two local sockets, one subscription in Redis: the hub's.
        assert hub.members(org_group) == 2
        assert await _subscribers(org_group) == 1
        assert ws_hub.hub_channel(get_channel_layer(), org_group) in hub.subscribed()

        assert await realtime.apush("bench", {"n": 1}, groups=[org_group])
        for comm in (a, b):
            event = await receive_until(comm, "bench")
            assert event["data"] == {"n": 1}
        assert [e for e in await drain(theirs, 0.3) if e["type"] == "bench"] == []

        for comm in (a, b, theirs):
            await comm.disconnect()
        # The last local socket gone, the hub unsubscribed and stopped.
        assert hub.members(org_group) == 0
        assert await _subscribers(org_group) == 0
        assert hub.subscribed() == set()

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

    class Connection:
        async def publish(self, channel, payload):
            sent.append((channel, payload))
            return 1

    class Layer:
        prefix = "asgi"
        hosts = [{"address": "redis://localhost/0"}]

        def consistent_hash(self, value):
            return 0

        def connection(self, index):
            return Connection()

        def create_pool(self, index):
            return type("Pool", (), {"connection_kwargs": {"db": 4}})

        def serialize(self, message):
            return message

    asyncio.run(realtime._group_send_all(Layer(), ["org.1.all", "org.1.user.2"], message))
    assert [(channel, m["group"]) for channel, m in sent] == [
        ("asgi:hub:4:org.1.all", "org.1.all"),
        ("asgi:hub:4:org.1.user.2", "org.1.user.2"),
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


def test_hub_channel_names_prefix_and_redis_database():
    """Pub/sub channels are shared by every database of a Redis server, unlike keys: two
    deployments on one server (or two test runs) must not hear each other's organisations."""

    class Layer:
        prefix = "asgi-x"

        def __init__(self, db):
            self.db = db

        def consistent_hash(self, value):
            return 0

        def create_pool(self, index):
            return type("Pool", (), {"connection_kwargs": {"db": self.db}})

    group = realtime.group_for_org(1)
    assert ws_hub.hub_channel(Layer(3), group) == "asgi-x:hub:3:org.1.all"
    assert ws_hub.hub_channel(Layer(3), group) != ws_hub.hub_channel(Layer(4), group)


def test_a_payload_naming_another_group_than_its_channel_is_dropped(org, member, other_org):
    """Routing is by the channel a message came on; a payload that names a different group (a
    forged or misrouted publish) reaches nobody."""

    async def scenario():
        comm, _ = await ws_open("/ws/chat/", user=member)
        await drain(comm, 0.1)
        layer = get_channel_layer()
        message = realtime.channel_message(realtime.make_envelope("bench", {"n": 1}))
        payload = layer.serialize({**message, "group": realtime.group_for_org(other_org.id)})
        connection = layer.connection(layer.consistent_hash(realtime.group_for_org(org.id)))
        await connection.publish(ws_hub.hub_channel(layer, realtime.group_for_org(org.id)), payload)
        assert [e for e in await drain(comm, 0.3) if e["type"] == "bench"] == []
        # The same event naming the right group arrives.
        await ws_hub.publish(layer, realtime.group_for_org(org.id), message)
        assert (await receive_until(comm, "bench"))["data"] == {"n": 1}
        await comm.disconnect()

    run(scenario)


def test_a_resubscription_closes_local_sockets_so_clients_catch_up(org, member):
    """redis-py subscribes again by itself after a broken connection; what was published in
    between is lost, so the hub closes its sockets with 4503 and clients reconnect and sync."""

    async def scenario():
        comm, _ = await ws_open("/ws/chat/", user=member)
        await drain(comm, 0.1)
        layer = get_channel_layer()
        hub = ws_hub.hub_for(layer)
        group = realtime.group_for_org(org.id)
        [subscription] = hub._subscriptions.values()
        channel = ws_hub.hub_channel(layer, group)
        hub._confirm(subscription, channel.encode())  # Redis confirms the same channel again
        output = await comm.receive_output(timeout=3)
        while output["type"] == "websocket.send":
            output = await comm.receive_output(timeout=3)
        assert output == {"type": "websocket.close", "code": ws_hub.SERVICE_RESTART}
        await comm.wait()

    run(scenario)


def test_confirmations_of_our_own_resubscribe_do_not_close_sockets(org, member):
    """A group left and joined again within a round trip sends SUBSCRIBE twice: the first
    confirmation must neither release the waiting socket early nor count as a reconnect."""

    async def scenario():
        comm, _ = await ws_open("/ws/chat/", user=member)
        await drain(comm, 0.1)
        layer = get_channel_layer()
        hub = ws_hub.hub_for(layer)
        [subscription] = hub._subscriptions.values()
        channel = ws_hub.hub_channel(layer, realtime.group_for_org(org.id))
        waiting = subscription.confirmed[channel] = asyncio.get_running_loop().create_future()
        subscription.pending[channel] = 2
        hub._confirm(subscription, channel)
        assert not waiting.done()
        hub._confirm(subscription, channel)
        assert waiting.done()
        assert not hub._restart_scheduled
        assert [e for e in await drain(comm, 0.3) if e.get("type") == "websocket.close"] == []
        await comm.disconnect()

    run(scenario)
