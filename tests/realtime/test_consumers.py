"""Consumer logic of /ws/chat/, /ws/chat/session/<id>/ and /ws/admin/monitor/."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.utils import timezone

from apps.conversations.models import Conversation, Message
from apps.core import realtime, ws_registry
from apps.core.ws import CloseCode
from apps.orgs.models import Role
from tests.conversations.factories import ConversationFactory, MessageFactory
from tests.realtime.conftest import (
    drain,
    receive_event,
    receive_until,
    token_for,
    ws_open,
)

pytestmark = pytest.mark.django_db


def run(coro_fn):
    return async_to_sync(coro_fn)()


def closed_with(output) -> int | None:
    return output.get("code") if output.get("type") == "websocket.close" else None


# --- authentication and authorisation -------------------------------------------------------------


def test_bad_token_closes_with_4401_and_delivers_nothing(member):
    async def scenario():
        comm, first = await ws_open("/ws/chat/", token="not-a-jwt")
        assert closed_with(first) == CloseCode.UNAUTHENTICATED
        await comm.disconnect()

    run(scenario)


def test_no_auth_message_within_timeout_closes_with_4401(member):
    async def scenario():
        comm, first = await ws_open("/ws/chat/")
        assert closed_with(first) == CloseCode.UNAUTHENTICATED
        await comm.disconnect()

    run(scenario)


def test_first_message_must_be_auth(member):
    async def scenario():
        from channels.testing import WebsocketCommunicator

        from tests.realtime.conftest import application

        comm = WebsocketCommunicator(application, "/ws/chat/")
        await comm.connect()
        await comm.send_json_to({"type": "ping"})
        assert closed_with(await comm.receive_output(timeout=2)) == CloseCode.UNAUTHENTICATED
        await comm.disconnect()

    run(scenario)


def test_auth_by_first_message(member, org):
    async def scenario():
        from channels.testing import WebsocketCommunicator

        from tests.realtime.conftest import application

        comm = WebsocketCommunicator(application, "/ws/chat/")
        await comm.connect()
        await comm.send_json_to({"type": "auth", "data": {"token": token_for(member)}})
        event = await receive_event(comm)
        assert event["type"] == "connection_established"
        assert event["data"]["org_id"] == org.id
        assert set(event) >= {"type", "data", "ts", "id"}
        await comm.disconnect()

    run(scenario)


def test_inactive_user_is_refused(member):
    member.is_active = False
    member.save()

    async def scenario():
        comm, first = await ws_open("/ws/chat/", token=token_for(member))
        assert closed_with(first) == CloseCode.UNAUTHENTICATED
        await comm.disconnect()

    run(scenario)


def test_non_member_of_requested_org_closes_with_4403(member, other_org):
    async def scenario():
        comm, first = await ws_open("/ws/chat/", user=member, org=other_org)
        assert closed_with(first) == CloseCode.FORBIDDEN
        await comm.disconnect()

    run(scenario)


def test_org_by_id_or_slug(member, org):
    async def scenario():
        for ref in (org.slug, str(org.id)):
            comm, first = await ws_open("/ws/chat/", user=member, org=ref)
            assert first["type"] == "connection_established"
            assert first["data"]["org_id"] == org.id
            await comm.disconnect()

    run(scenario)


def test_monitor_needs_manager(org, make_member):
    agent = make_member(Role.AGENT)
    manager = make_member(Role.MANAGER)

    async def scenario():
        comm, first = await ws_open("/ws/admin/monitor/", user=agent)
        assert closed_with(first) == CloseCode.FORBIDDEN
        await comm.disconnect()
        comm, first = await ws_open("/ws/admin/monitor/", user=manager)
        assert first["type"] == "connection_established"
        stats = await receive_until(comm, "stats_update")
        assert stats["data"]["total_connections"] == 1
        await comm.disconnect()

    run(scenario)


def test_session_of_other_org_conversation_closes_with_4404(member, other_org):
    foreign = ConversationFactory(org=other_org)

    async def scenario():
        for ref in (foreign.id, 999999, "abc"):
            comm, first = await ws_open(f"/ws/chat/session/{ref}/", user=member)
            assert closed_with(first) == CloseCode.NOT_FOUND
            await comm.disconnect()

    run(scenario)
    assert ws_registry.connections_for_org(other_org.id) == []


def test_session_of_own_conversation_sends_session_joined(member, org):
    conversation = ConversationFactory(org=org, unread_count=3)

    async def scenario():
        comm, first = await ws_open(f"/ws/chat/session/{conversation.id}/", user=member)
        assert first["type"] == "connection_established"
        joined = await receive_event(comm)
        assert joined["type"] == "session_joined"
        assert joined["data"]["conversation"]["id"] == conversation.id
        assert joined["data"]["conversation"]["unread_count"] == 3
        await comm.disconnect()

    run(scenario)


# --- connection limit -----------------------------------------------------------------------------


def test_sixth_connection_closes_with_4429_and_a_freed_slot_is_reusable(member, settings):
    settings.WS_MAX_CONNECTIONS_PER_USER = 5

    async def scenario():
        sockets = []
        for _ in range(5):
            comm, first = await ws_open("/ws/chat/", user=member)
            assert first["type"] == "connection_established"
            sockets.append(comm)
        comm, first = await ws_open("/ws/chat/", user=member)
        assert closed_with(first) == CloseCode.TOO_MANY_CONNECTIONS
        await comm.disconnect()
        await sockets.pop().disconnect()
        comm, first = await ws_open("/ws/chat/", user=member)
        assert first["type"] == "connection_established"
        sockets.append(comm)
        for comm in sockets:
            await comm.disconnect()

    run(scenario)


def test_limit_counts_other_organisations_too(member, other_org, settings):
    """The limit is per user, whatever organisation each socket is in."""
    from tests.orgs.factories import MembershipFactory

    MembershipFactory(org=other_org, user=member, role=Role.AGENT)
    settings.WS_MAX_CONNECTIONS_PER_USER = 2

    async def scenario():
        a, first_a = await ws_open("/ws/chat/", user=member)
        b, first_b = await ws_open("/ws/chat/", user=member, org=other_org)
        assert first_b["data"]["org_id"] == other_org.id
        c, first_c = await ws_open("/ws/chat/", user=member, org=other_org)
        assert closed_with(first_c) == CloseCode.TOO_MANY_CONNECTIONS
        for comm in (a, b, c):
            await comm.disconnect()

    run(scenario)


def test_slots_of_a_crashed_process_expire(member, org, settings):
    """A process that died without disconnect() left 5 leases; they expire by themselves."""
    settings.WS_MAX_CONNECTIONS_PER_USER = 5
    settings.WS_CONNECTION_LEASE_SECONDS = 0.3

    async def scenario():
        for i in range(5):
            allowed, _ = await ws_registry.register(
                org_id=org.id, user_id=member.id, conn_id=f"dead{i}", info={}, limit=5
            )
            assert allowed
        comm, first = await ws_open("/ws/chat/", user=member)
        assert closed_with(first) == CloseCode.TOO_MANY_CONNECTIONS
        await comm.disconnect()
        await asyncio.sleep(0.4)
        comm, first = await ws_open("/ws/chat/", user=member)
        assert first["type"] == "connection_established"
        await comm.disconnect()

    run(scenario)


def test_disconnect_frees_the_registry(member, org):
    async def scenario():
        comm, first = await ws_open("/ws/chat/", user=member)
        rows = await sync_to_async(ws_registry.connections_for_org)(org.id)
        assert [r["connection_id"] for r in rows] == [first["data"]["connection_id"]]
        assert rows[0]["user_id"] == member.id and rows[0]["endpoint"] == "chat"
        await comm.disconnect()

    run(scenario)
    assert ws_registry.connections_for_org(org.id) == []
    assert ws_registry.online_user_ids(org.id) == []


# --- heartbeat ------------------------------------------------------------------------------------


def test_silent_client_gets_pings_then_closes_with_4408(member, org, settings):
    settings.WS_HEARTBEAT_INTERVAL_SECONDS = 0.05
    settings.WS_HEARTBEAT_TIMEOUT_SECONDS = 0.25

    async def scenario():
        comm, first = await ws_open("/ws/chat/", user=member)
        assert first["type"] == "connection_established"
        events = [e for e in await drain(comm, window=0.5) if e["type"] != "user_status_update"]
        assert events[0]["type"] == "ping"
        assert closed_with(events[-1]) == CloseCode.HEARTBEAT_TIMEOUT
        await comm.disconnect()

    run(scenario)
    assert ws_registry.connections_for_org(org.id) == []


def test_a_failing_heartbeat_closes_with_4500_not_a_code_daphne_refuses(
    member, org, settings, monkeypatch
):
    """A server-side failure in the heartbeat closes the socket with an application code: Daphne
    refuses 1011 from a server (only 1000 and 3000-4999), and the close would raise instead."""
    from apps.core import ws

    settings.WS_HEARTBEAT_INTERVAL_SECONDS = 0.05

    async def broken(self):
        raise RuntimeError("registry down")

    monkeypatch.setattr(ws.RealtimeConsumer, "refresh_lease", broken)

    async def scenario():
        comm, first = await ws_open("/ws/chat/", user=member)
        assert first["type"] == "connection_established"
        events = await drain(comm, window=0.5)
        assert closed_with(events[-1]) == CloseCode.SERVER_ERROR == 4500
        await comm.disconnect()

    run(scenario)


def test_client_that_answers_stays_connected(member, settings):
    settings.WS_HEARTBEAT_INTERVAL_SECONDS = 0.05
    settings.WS_HEARTBEAT_TIMEOUT_SECONDS = 0.25

    async def scenario():
        comm, _ = await ws_open("/ws/chat/", user=member)
        for _ in range(8):  # 0.6 s, more than twice the timeout
            await asyncio.sleep(0.075)
            await comm.send_json_to({"type": "pong"})
        # Still open after more than twice the timeout (a closed socket fails receive_json_from).
        await comm.send_json_to({"type": "ping"})
        assert (await receive_until(comm, "pong"))["type"] == "pong"
        await comm.disconnect()

    run(scenario)


# --- client messages ------------------------------------------------------------------------------


def test_unknown_and_malformed_messages_get_error_without_disconnect(member):
    async def scenario():
        comm, _ = await ws_open("/ws/chat/", user=member)
        await comm.send_json_to({"type": "explode"})
        assert (await receive_event(comm))["data"]["code"] == "unknown_type"
        await comm.send_to(text_data="{not json")
        assert (await receive_event(comm))["data"]["code"] == "malformed"
        await comm.send_json_to(["a", "list"])
        assert (await receive_event(comm))["data"]["code"] == "malformed"
        await comm.send_json_to({"type": "join", "data": "x"})
        assert (await receive_event(comm))["data"]["code"] == "malformed"
        await comm.send_json_to({"type": "join", "data": {"conversation_id": "x"}})
        assert (await receive_event(comm))["data"]["code"] == "invalid"
        await comm.send_to(bytes_data=b"\x00")
        assert (await receive_event(comm))["data"]["code"] == "malformed"
        await comm.send_json_to({"type": "ping"})
        assert (await receive_event(comm))["type"] == "pong"
        await comm.disconnect()

    run(scenario)


def test_join_leave_and_typing_relay_to_other_watchers_only(org, member, make_member):
    agent = make_member(Role.AGENT)
    conversation = ConversationFactory(org=org)
    other = ConversationFactory(org=org)

    async def scenario():
        a, _ = await ws_open("/ws/chat/", user=member)
        b, _ = await ws_open("/ws/chat/", user=agent)
        c, _ = await ws_open(f"/ws/chat/session/{conversation.id}/", user=agent)
        await receive_until(c, "session_joined")
        for comm in (a, b):
            await comm.send_json_to({"type": "join", "data": {"conversation_id": conversation.id}})
            joined = await receive_until(comm, "session_joined")
            assert joined["data"]["conversation"]["id"] == conversation.id
        await drain(a, 0.1)
        await drain(b, 0.1)
        await drain(c, 0.1)

        await a.send_json_to(
            {"type": "typing", "data": {"conversation_id": conversation.id, "is_typing": True}}
        )
        typing = await receive_until(b, "typing")
        assert typing["data"] == {
            "conversation_id": conversation.id,
            "user_id": member.id,
            "name": member.get_full_name(),
            "is_typing": True,
            "viewing": True,
        }
        assert (await receive_until(c, "typing"))["data"]["user_id"] == member.id
        assert [e for e in await drain(a, 0.2) if e["type"] == "typing"] == []

        # Typing in a conversation not joined is refused.
        await a.send_json_to({"type": "typing", "data": {"conversation_id": other.id}})
        assert (await receive_until(a, "error"))["data"]["code"] == "not_joined"

        await b.send_json_to({"type": "leave", "data": {"conversation_id": conversation.id}})
        assert (await receive_until(b, "session_left"))["data"]["conversation_id"] == (
            conversation.id
        )
        await a.send_json_to({"type": "typing", "data": {"conversation_id": conversation.id}})
        assert (await receive_until(c, "typing"))["data"]["user_id"] == member.id
        assert [e for e in await drain(b, 0.2) if e["type"] == "typing"] == []
        for comm in (a, b, c):
            await comm.disconnect()

    run(scenario)


def test_join_of_other_org_conversation_is_not_found(member, other_org):
    foreign = ConversationFactory(org=other_org)

    async def scenario():
        comm, _ = await ws_open("/ws/chat/", user=member)
        await comm.send_json_to({"type": "join", "data": {"conversation_id": foreign.id}})
        assert (await receive_event(comm))["data"]["code"] == "not_found"
        await comm.send_json_to({"type": "mark_read", "data": {"conversation_id": foreign.id}})
        assert (await receive_event(comm))["data"]["code"] == "not_found"
        await comm.disconnect()

    run(scenario)
    assert Conversation.objects.get(id=foreign.id).unread_count == 0


def test_session_socket_cannot_switch_conversations(member, org):
    conversation = ConversationFactory(org=org)
    other = ConversationFactory(org=org)

    async def scenario():
        comm, _ = await ws_open(f"/ws/chat/session/{conversation.id}/", user=member)
        await receive_until(comm, "session_joined")
        await comm.send_json_to({"type": "join", "data": {"conversation_id": other.id}})
        assert (await receive_event(comm))["data"]["code"] == "not_supported"
        await comm.send_json_to({"type": "typing", "data": {"conversation_id": other.id}})
        assert (await receive_event(comm))["data"]["code"] == "not_joined"
        await comm.disconnect()

    run(scenario)


@pytest.mark.django_db(transaction=True)  # the push happens on commit
def test_mark_read_resets_unread_and_tells_watchers(org, member, make_member):
    agent = make_member(Role.AGENT)
    conversation = ConversationFactory(org=org, unread_count=4)

    async def scenario():
        watcher, _ = await ws_open(f"/ws/chat/session/{conversation.id}/", user=agent)
        await receive_until(watcher, "session_joined")
        comm, _ = await ws_open("/ws/chat/", user=member)
        await comm.send_json_to({"type": "mark_read", "data": {"conversation_id": conversation.id}})
        event = await receive_until(watcher, "conversation_read")
        assert event["data"] == {
            "conversation_id": conversation.id,
            "unread_count": 0,
            "read_by": member.id,
        }
        # /ws/chat/ is in the inbox group: it gets the event once.
        own = [e for e in await drain(comm, 0.3) if e["type"] == "conversation_read"]
        assert len(own) == 1
        await comm.disconnect()
        await watcher.disconnect()

    run(scenario)
    conversation.refresh_from_db()
    assert conversation.unread_count == 0


def test_event_reaching_two_groups_of_one_socket_is_delivered_once(org, member):
    conversation = ConversationFactory(org=org)

    async def scenario():
        comm, _ = await ws_open("/ws/chat/", user=member)
        await comm.send_json_to({"type": "join", "data": {"conversation_id": conversation.id}})
        await receive_until(comm, "session_joined")
        await sync_to_async(realtime.push)(
            "new_message",
            {"conversation_id": conversation.id},
            groups=[
                realtime.group_for_conversations(org.id),
                realtime.group_for_conversation(org.id, conversation.id),
            ],
        )
        events = [e for e in await drain(comm, 0.3) if e["type"] == "new_message"]
        assert len(events) == 1
        await comm.disconnect()

    run(scenario)


# --- catch-up -------------------------------------------------------------------------------------


def test_sync_returns_messages_changed_since_from_the_database(org, member, other_org):
    conversation = ConversationFactory(org=org)
    second = ConversationFactory(org=org)
    old = MessageFactory(conversation=conversation)
    Message.objects.filter(id=old.id).update(
        created_at=timezone.now() - timedelta(hours=2),
        updated_at=timezone.now() - timedelta(hours=2),
    )
    since = timezone.now() - timedelta(hours=1)
    new1 = MessageFactory(conversation=conversation)
    new2 = MessageFactory(conversation=second)
    MessageFactory(conversation=ConversationFactory(org=other_org))  # never visible

    async def scenario():
        comm, _ = await ws_open("/ws/chat/", user=member)
        await comm.send_json_to({"type": "sync", "data": {"since": since.isoformat()}})
        event = await receive_until(comm, "sync")
        assert [m["id"] for m in event["data"]["messages"]] == [new1.id, new2.id]
        assert event["data"]["has_more"] is False
        assert event["data"]["cursor"]["last_message_id"] == new2.id

        await comm.send_json_to({"type": "sync", "data": {"last_message_id": new1.id}})
        event = await receive_until(comm, "sync")
        assert [m["id"] for m in event["data"]["messages"]] == [new2.id]

        await comm.send_json_to({"type": "sync", "data": {"since": "yesterday"}})
        assert (await receive_until(comm, "error"))["data"]["code"] == "invalid"
        await comm.send_json_to({"type": "sync", "data": {}})
        assert (await receive_until(comm, "error"))["data"]["code"] == "invalid"
        await comm.disconnect()

        # A session socket catches up on its own conversation only, straight after connecting.
        session, _ = await ws_open(
            f"/ws/chat/session/{conversation.id}/",
            user=member,
            extra=f"last_message_id={old.id}",
        )
        event = await receive_until(session, "sync")
        assert [m["id"] for m in event["data"]["messages"]] == [new1.id]
        assert event["data"]["messages"][0]["text"] == new1.text
        await session.disconnect()

    run(scenario)


def test_sync_pages_with_has_more(org, member, settings):
    settings.WS_SYNC_LIMIT = 2
    conversation = ConversationFactory(org=org)
    messages = [MessageFactory(conversation=conversation) for _ in range(3)]

    async def scenario():
        comm, _ = await ws_open("/ws/chat/", user=member)
        await comm.send_json_to({"type": "sync", "data": {"last_message_id": 0}})
        event = await receive_until(comm, "sync")
        assert event["data"]["has_more"] is True
        assert [m["id"] for m in event["data"]["messages"]] == [m.id for m in messages[:2]]
        cursor = event["data"]["cursor"]["last_message_id"]
        await comm.send_json_to({"type": "sync", "data": {"last_message_id": cursor}})
        event = await receive_until(comm, "sync")
        assert [m["id"] for m in event["data"]["messages"]] == [messages[2].id]
        assert event["data"]["has_more"] is False
        await comm.disconnect()

    run(scenario)


# --- tenancy of pushes, presence, admin control ---------------------------------------------------


def test_other_org_socket_receives_nothing(org, member, outsider):
    conversation = ConversationFactory(org=org)

    async def scenario():
        ours, _ = await ws_open("/ws/chat/", user=member)
        theirs, _ = await ws_open("/ws/admin/monitor/", user=outsider)
        await drain(theirs, 0.1)
        groups = [
            realtime.group_for_org(org.id),
            realtime.group_for_conversations(org.id),
            realtime.group_for_conversation(org.id, conversation.id),
            realtime.group_for_monitor(org.id),
            realtime.group_for_user(org.id, member.id),
        ]
        await sync_to_async(realtime.push)("new_message", {"secret": "x"}, groups=groups)
        assert (await receive_until(ours, "new_message"))["data"] == {"secret": "x"}
        assert await drain(theirs, 0.5) == []
        await ours.disconnect()
        await theirs.disconnect()

    run(scenario)


def test_presence_online_and_offline(org, member, make_member):
    agent = make_member(Role.AGENT)

    async def scenario():
        watcher, _ = await ws_open("/ws/chat/", user=member)
        await drain(watcher, 0.1)
        first, _ = await ws_open("/ws/chat/", user=agent)
        event = await receive_until(watcher, "user_status_update")
        assert event["data"]["user_id"] == agent.id and event["data"]["status"] == "online"
        assert await sync_to_async(ws_registry.online_user_ids)(org.id) == sorted(
            [member.id, agent.id]
        )
        second, _ = await ws_open("/ws/chat/", user=agent)  # already online: no event
        await first.disconnect()  # still online through the second socket
        assert [e for e in await drain(watcher, 0.2) if e["type"] == "user_status_update"] == []
        await second.disconnect()
        event = await receive_until(watcher, "user_status_update")
        assert event["data"] == {
            "user_id": agent.id,
            "name": agent.get_full_name(),
            "status": "offline",
        }
        assert await sync_to_async(ws_registry.online_user_ids)(org.id) == [member.id]
        await watcher.disconnect()

    run(scenario)


def test_disconnect_control_closes_the_users_sockets_with_4000(org, member, make_member):
    agent = make_member(Role.AGENT)

    async def scenario():
        target, _ = await ws_open("/ws/chat/", user=agent)
        bystander, _ = await ws_open("/ws/chat/", user=member)
        await sync_to_async(realtime.send_control)(
            "disconnect", groups=[realtime.group_for_user(org.id, agent.id)]
        )
        events = await drain(target, 0.3)
        assert closed_with(events[-1]) == CloseCode.DISCONNECTED_BY_ADMIN
        assert all(closed_with(e) is None for e in await drain(bystander, 0.1))
        await target.disconnect()
        await bystander.disconnect()

    run(scenario)
