"""The workspace's WebSocket rules: the visibility setting on /ws/chat/ and session sockets,
and nothing live for another organisation (consumer-level, see tests/realtime/conftest.py)."""

from __future__ import annotations

import pytest

from apps.conversations.models import Message
from apps.orgs.models import Role
from tests.conversations.test_workspace import make_conversation, restrict

pytestmark = pytest.mark.django_db


# -- the WebSocket under the visibility rule ----------------------------------------------------


def test_restricted_agent_socket_gets_only_visible_conversations(org, make_member):
    from asgiref.sync import async_to_sync, sync_to_async

    from apps.conversations import payloads
    from apps.core import realtime
    from apps.core.ws import CloseCode
    from tests.realtime.conftest import drain, receive_until, ws_open

    restrict(org)
    agent, colleague = make_member(Role.AGENT), make_member(Role.AGENT)
    visible = make_conversation(org)
    hidden = make_conversation(org, assignee=colleague)
    Message.objects.filter(conversation=hidden).update(text="secret")
    group = realtime.group_for_conversations(org.id)

    events = {
        c.id: {
            "message": payloads.message_payload(c.messages.first()),
            "conversation": payloads.conversation_payload(c),
        }
        for c in (visible, hidden)
    }

    def push_message(conversation):
        realtime.push("new_message", events[conversation.id], groups=[group])

    async def scenario():
        sock, first = await ws_open("/ws/chat/", user=agent, org=org)
        assert first["type"] == "connection_established"
        await drain(sock, 0.1)
        await sync_to_async(push_message)(hidden)
        await sync_to_async(push_message)(visible)
        event = await receive_until(sock, "new_message")
        assert event["data"]["conversation"]["id"] == visible.id
        assert [e for e in await drain(sock, 0.3) if e.get("type") == "new_message"] == []
        # Assigned away: the page is told to drop the row, without the conversation's data.
        visible.assignee = colleague
        await sync_to_async(realtime.push)(
            "conversation_updated",
            {"conversation": payloads.conversation_payload(visible)},
            groups=[group],
        )
        removed = await receive_until(sock, "conversation_removed")
        assert removed["data"] == {"conversation_id": visible.id}
        # Join and catch-up refuse or skip what the agent may not see.
        await sock.send_json_to({"type": "join", "data": {"conversation_id": hidden.id}})
        assert (await receive_until(sock, "error"))["data"]["code"] == "not_found"
        await sock.send_json_to({"type": "sync", "data": {"last_message_id": 0}})
        synced = await receive_until(sock, "sync")
        assert "secret" not in [m["text"] for m in synced["data"]["messages"]]
        await sock.disconnect()
        session, closed = await ws_open(f"/ws/chat/session/{hidden.id}/", user=agent, org=org)
        assert closed.get("code") == CloseCode.NOT_FOUND
        await session.disconnect()

    async_to_sync(scenario)()


def test_other_orgs_agent_gets_nothing_live(org, other_org, make_member, outsider):
    from asgiref.sync import async_to_sync, sync_to_async

    from apps.conversations import services
    from tests.realtime.conftest import drain, ws_open

    ours = make_conversation(org)

    async def scenario():
        sock, first = await ws_open("/ws/chat/", user=outsider, org=other_org)
        assert first["type"] == "connection_established"
        await drain(sock, 0.1)
        await sync_to_async(services.conversation_take_over)(
            org=org, conversation_id=ours.id, user=make_member_sync()
        )
        events = [e for e in await drain(sock, 0.5) if e.get("type") not in ("ping",)]
        assert events == []
        await sock.send_json_to({"type": "join", "data": {"conversation_id": ours.id}})
        assert (await drain(sock, 0.5))[0]["data"]["code"] == "not_found"
        await sock.disconnect()

    agent = make_member(Role.AGENT)

    def make_member_sync():
        return agent

    async_to_sync(scenario)()
