"""``/ws/admin/monitor/``: the live operations view for owners, admins and managers.

Receives ``stats_update`` (on connect, on request ``{"type": "stats"}`` and every minute from
the beat task ``ws_stats_push``), ``user_status_update``, and whatever the monitoring work
pushes to the monitor group (account status, integration health, alerts).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async

from apps.core import realtime
from apps.core.ws import RealtimeConsumer
from apps.monitoring import selectors
from apps.orgs.models import Role


class MonitorConsumer(RealtimeConsumer):
    endpoint = "monitor"
    minimum_role = Role.MANAGER

    def initial_groups(self) -> list[str]:
        return [*super().initial_groups(), realtime.group_for_monitor(self.org.id)]

    async def after_connect(self) -> None:
        await self.handle_stats({})

    async def handle_stats(self, data: dict[str, Any]) -> None:
        stats = await sync_to_async(selectors.ws_stats, thread_sensitive=False)(org_id=self.org.id)
        await self.send_event("stats_update", stats)
