"""Notifications API, notification webhooks API and the WebSocket management API."""

from __future__ import annotations

import pytest
from asgiref.sync import async_to_sync

from apps.core import realtime, ws_registry
from apps.monitoring import services
from apps.monitoring.models import Notification, NotificationWebhook
from apps.orgs.models import Role
from tests.conftest import client_for
from tests.monitoring.helpers import GroupListener

pytestmark = pytest.mark.django_db


def _connect(org, user, conn_id, endpoint="chat"):
    """A live connection as a consumer registers it (any process)."""
    info = {
        "user_id": user.id,
        "org_id": org.id,
        "endpoint": endpoint,
        "conversation_ids": [],
        "connected_at": "2025-01-01T00:00:00+00:00",
        "last_seen_at": "2025-01-01T00:00:00+00:00",
        "server": "test:1",
        "client": "127.0.0.1:5000",
    }
    async_to_sync(ws_registry.register)(
        org_id=org.id, user_id=user.id, conn_id=conn_id, info=info, limit=5
    )


# --- notifications --------------------------------------------------------------------------------


def test_list_only_own_notifications_with_unread_filter(
    org, owner, member, outsider, other_org, django_assert_max_num_queries
):
    services.notify(org=org, users=[member], title="one")
    read = services.notify(org=org, users=[member], title="two")[0]
    services.notification_mark_read(org=org, user=member, notification_id=read.id)
    services.notify(org=org, users=[owner], title="owner's")
    services.notify(org=other_org, users=[outsider], title="theirs")
    client = client_for(member, org)
    with django_assert_max_num_queries(6):
        body = client.get("/api/v1/notifications/").json()
    assert sorted(n["title"] for n in body["results"]) == ["one", "two"]
    unread = client.get("/api/v1/notifications/?unread=true").json()["results"]
    assert [n["title"] for n in unread] == ["one"]
    assert client.get("/api/v1/notifications/unread-count/").json() == {"unread": 1}
    # Not a boolean: refused, never read as "no filter" (schemathesis found unread=null).
    assert client.get("/api/v1/notifications/?unread=null").status_code == 400


def test_mark_read_and_read_all(org, member):
    first, _second = (services.notify(org=org, users=[member], title=t)[0] for t in "ab")
    client = client_for(member, org)
    response = client.post(f"/api/v1/notifications/{first.id}/read/")
    assert response.status_code == 200 and response.json()["read_at"]
    assert client.post("/api/v1/notifications/read-all/").json() == {"updated": 1}
    assert not Notification.objects.filter(read_at__isnull=True).exists()


def test_other_users_and_other_orgs_notifications_answer_404(
    org, owner, member, outsider, other_org
):
    mine = services.notify(org=org, users=[owner], title="owner's")[0]
    theirs = services.notify(org=other_org, users=[outsider], title="theirs")[0]
    client = client_for(member, org)
    for notification in (mine, theirs):
        assert client.get(f"/api/v1/notifications/{notification.id}/").status_code == 404
        assert client.post(f"/api/v1/notifications/{notification.id}/read/").status_code == 404
    assert client_for(outsider, other_org).post("/api/v1/notifications/read-all/").json() == {
        "updated": 1
    }
    assert Notification.objects.get(id=mine.id).read_at is None


def test_anonymous_gets_401(anon_client):
    assert anon_client.get("/api/v1/notifications/").status_code == 401
    assert anon_client.get("/api/v1/websocket/stats/").status_code == 401


# --- webhooks -------------------------------------------------------------------------------------


def test_webhook_crud_masks_secrets_and_needs_admin(org, member, make_member, outsider, other_org):
    client = client_for(member, org)
    response = client.post(
        "/api/v1/notification-webhooks/",
        {"name": "ops", "kind": "wecom", "url": "https://qyapi.weixin.qq.com/x?key=abcdef123456"},
    )
    assert response.status_code == 201, response.json()
    assert "abcdef123456" not in response.json()["url"]
    webhook = NotificationWebhook.objects.get()
    assert webhook.org == org and webhook.url.endswith("abcdef123456")
    bad = client.post("/api/v1/notification-webhooks/", {"name": "x", "url": "ftp://x"})
    assert bad.status_code == 400 and "url" in bad.json()["error"]["fields"]
    agent = make_member(Role.AGENT)
    assert client_for(agent, org).get("/api/v1/notification-webhooks/").status_code == 403
    foreign = client_for(outsider, other_org)
    assert foreign.get(f"/api/v1/notification-webhooks/{webhook.id}/").status_code == 404
    assert foreign.delete(f"/api/v1/notification-webhooks/{webhook.id}/").status_code == 404


# --- the WebSocket management API -----------------------------------------------------------------


def test_ws_api_needs_owner_or_admin(org, make_member):
    manager = make_member(Role.MANAGER)
    client = client_for(manager, org)
    for path in ("stats", "connections", "health", "online-users"):
        assert client.get(f"/api/v1/websocket/{path}/").status_code == 403
    assert client.post("/api/v1/websocket/broadcast/", {"title": "x"}).status_code == 403


def test_stats_connections_and_online_users_are_org_scoped(org, owner, member, outsider, other_org):
    _connect(org, member, "c1")
    _connect(org, member, "c2", endpoint="session")
    _connect(org, owner, "c3", endpoint="monitor")
    _connect(other_org, outsider, "x1")
    client = client_for(member, org)
    stats = client.get("/api/v1/websocket/stats/").json()
    assert stats["total_connections"] == 3
    assert stats["active_users"] == 2
    assert stats["connections_by_endpoint"] == {"chat": 1, "session": 1, "monitor": 1}
    assert stats["connects"] == 3
    rows = client.get("/api/v1/websocket/connections/").json()["results"]
    assert sorted(r["connection_id"] for r in rows) == ["c1", "c2", "c3"]
    user_rows = client.get(f"/api/v1/websocket/users/{member.id}/connections/").json()
    assert sorted(r["connection_id"] for r in user_rows["results"]) == ["c1", "c2"]
    online = client.get("/api/v1/websocket/online-users/").json()["results"]
    assert {(u["user_id"], u["connections"]) for u in online} == {(member.id, 2), (owner.id, 1)}
    # Another organisation's user does not exist here.
    assert client.get(f"/api/v1/websocket/users/{outsider.id}/connections/").status_code == 404
    assert (
        client_for(outsider, other_org).get("/api/v1/websocket/stats/").json()["total_connections"]
        == 1
    )


def test_health(org, member):
    body = client_for(member, org).get("/api/v1/websocket/health/").json()
    assert body["ok"] is True
    assert body["redis"]["ok"] and body["channel_layer"]["ok"]
    assert "4429" in body["close_codes"]


def test_broadcast_reaches_the_org_group_only(org, member, other_org):
    ours = GroupListener(realtime.group_for_org(org.id))
    theirs = GroupListener(realtime.group_for_org(other_org.id))
    response = client_for(member, org).post(
        "/api/v1/websocket/broadcast/", {"title": "Maintenance", "type": "warning"}
    )
    assert response.status_code == 202
    [event] = ours.events()
    assert event["type"] == "notification" and event["data"]["title"] == "Maintenance"
    assert theirs.messages(0.2) == []
    bad = client_for(member, org).post("/api/v1/websocket/broadcast/", {"type": "loud"})
    assert bad.status_code == 400


def test_disconnect_sends_control_to_own_org_user_group_only(
    org, member, make_member, outsider, other_org
):
    agent = make_member(Role.AGENT)
    _connect(org, agent, "a1")
    listener = GroupListener(realtime.group_for_user(org.id, agent.id))
    client = client_for(member, org)
    response = client.post("/api/v1/websocket/users/disconnect/", {"user_id": agent.id})
    assert response.status_code == 202 and response.json() == {"sent": True, "connections": 1}
    [message] = listener.messages()
    assert message == {
        "type": "realtime.control",
        "action": "disconnect",
        "group": realtime.group_for_user(org.id, agent.id),
    }
    # One connection only; an unknown one is 404.
    listener = GroupListener(realtime.group_for_user(org.id, agent.id))
    response = client.post(
        "/api/v1/websocket/users/disconnect/", {"user_id": agent.id, "connection_id": "a1"}
    )
    assert response.status_code == 202
    assert listener.messages()[0]["connection_id"] == "a1"
    assert (
        client.post(
            "/api/v1/websocket/users/disconnect/", {"user_id": agent.id, "connection_id": "zz"}
        ).status_code
        == 404
    )
    # Another organisation's user: 404, and nothing is sent to any group of theirs.
    theirs = GroupListener(realtime.group_for_user(other_org.id, outsider.id))
    assert (
        client.post("/api/v1/websocket/users/disconnect/", {"user_id": outsider.id}).status_code
        == 404
    )
    assert theirs.messages(0.2) == []


def test_notify_endpoint_stores_for_members_and_refuses_outsiders(
    org, owner, member, make_member, outsider
):
    agent = make_member(Role.AGENT)
    client = client_for(member, org)
    response = client.post(
        "/api/v1/websocket/notify/",
        {"user_ids": [agent.id], "roles": ["owner"], "title": "Hi", "type": "success"},
    )
    assert response.status_code == 201
    assert response.json()["notified"] == 2
    assert sorted(Notification.objects.values_list("user_id", flat=True)) == sorted(
        [agent.id, owner.id]
    )
    refused = client.post("/api/v1/websocket/notify/", {"user_ids": [outsider.id], "title": "Hi"})
    assert refused.status_code == 400 and "user_ids" in refused.json()["error"]["fields"]
    assert client.post("/api/v1/websocket/notify/", {"title": "nobody"}).status_code == 400
    assert not Notification.objects.filter(user=outsider).exists()


def test_ping_user(org, member, make_member, outsider):
    agent = make_member(Role.AGENT)
    listener = GroupListener(realtime.group_for_user(org.id, agent.id))
    client = client_for(member, org)
    response = client.post(f"/api/v1/websocket/ping/{agent.id}/")
    assert response.status_code == 202 and response.json() == {"sent": True, "connections": 0}
    assert [e["type"] for e in listener.events()] == ["ping"]
    assert client.post(f"/api/v1/websocket/ping/{outsider.id}/").status_code == 404
