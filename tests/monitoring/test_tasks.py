"""The periodic realtime task: stats to monitor sockets, offline events for dead sockets."""

from __future__ import annotations

import time

import pytest
from asgiref.sync import async_to_sync

from apps.core import realtime, ws_registry
from apps.monitoring.tasks import ws_stats_push
from tests.monitoring.helpers import GroupListener

pytestmark = pytest.mark.django_db


def _register(org, user, conn_id):
    async_to_sync(ws_registry.register)(
        org_id=org.id,
        user_id=user.id,
        conn_id=conn_id,
        info={"user_id": user.id, "org_id": org.id, "endpoint": "chat"},
        limit=5,
    )


def test_stats_push_reaches_each_orgs_monitor_group_and_is_idempotent(
    org, member, other_org, outsider
):
    _register(org, member, "a")
    _register(other_org, outsider, "b")
    ours = GroupListener(realtime.group_for_monitor(org.id))
    theirs = GroupListener(realtime.group_for_monitor(other_org.id))
    assert ws_stats_push() == 2
    assert ws_stats_push() == 2  # run twice: same result, nothing accumulates
    ours_events = ours.events()
    assert [e["type"] for e in ours_events] == ["stats_update", "stats_update"]
    assert {e["data"]["total_connections"] for e in ours_events} == {1}
    assert [e["data"]["total_connections"] for e in theirs.events()] == [1, 1]


def test_stats_push_announces_users_whose_sockets_died(org, member, owner, settings):
    settings.WS_CONNECTION_LEASE_SECONDS = 0.3
    _register(org, member, "dead")
    settings.WS_CONNECTION_LEASE_SECONDS = 60
    _register(org, owner, "alive")
    time.sleep(0.4)
    listener = GroupListener(realtime.group_for_org(org.id))
    ws_stats_push()
    events = [e for e in listener.events() if e["type"] == "user_status_update"]
    assert [(e["data"]["user_id"], e["data"]["status"]) for e in events] == [(member.id, "offline")]
    assert ws_registry.online_user_ids(org.id) == [owner.id]
    ws_stats_push()  # second run: nobody is announced twice
    assert [e for e in GroupListener(realtime.group_for_org(org.id)).events()] == []
