"""Reads of the monitoring app, scoped to one organisation."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.core import realtime, ws_registry
from apps.monitoring.models import Notification


def notification_list(*, org, user, unread: bool | None = None) -> QuerySet[Notification]:
    queryset = Notification.objects.filter(org=org, user=user)
    if unread is True:
        queryset = queryset.filter(read_at__isnull=True)
    elif unread is False:
        queryset = queryset.filter(read_at__isnull=False)
    return queryset


def ws_stats(*, org_id: int) -> dict:
    """Live WebSocket figures of one organisation (from the Redis registry)."""
    connections = ws_registry.connections_for_org(org_id)
    by_endpoint: dict[str, int] = {}
    conversations: set[int] = set()
    users: set[int] = set()
    for info in connections:
        by_endpoint[info.get("endpoint", "")] = by_endpoint.get(info.get("endpoint", ""), 0) + 1
        conversations.update(info.get("conversation_ids") or [])
        users.add(info.get("user_id"))
    return {
        "total_connections": len(connections),
        "active_users": len(users),
        "online_users": len(ws_registry.online_user_ids(org_id)),
        "active_sessions": len(conversations),
        "connections_by_endpoint": by_endpoint,
        **ws_registry.counters_for_org(org_id),
        "push_failures_this_process": realtime.push_failure_count(),
    }
