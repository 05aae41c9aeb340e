"""``python manage.py simulator_sync``: teach the running simulators every account that points at
them (device online, address book) and register the webhook URL (``PUBLIC_BASE_URL``) there.
``run_stack`` runs it once the simulators are up; run it by hand after restarting them."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.conversations.simulate import SimulatorUnavailable, simulator_account_sync
from apps.core.exceptions import ApplicationError
from apps.wechat_accounts.models import WeChatAccount


def _points_at_simulator(base_url: str) -> bool:
    host = settings.SIMULATOR_HOST
    return any(f"//{host}:{port}" in base_url for port in settings.SIMULATOR_PORTS.values())


class Command(BaseCommand):
    help = "Register logged-in accounts and the webhook URL with the running simulators."

    def handle(self, *args, **options):
        accounts = (
            WeChatAccount.objects.exclude(device_id="")
            .exclude(wxid="")
            .select_related("connection", "org")
            .order_by("id")
        )
        synced = 0
        for account in accounts:
            if not _points_at_simulator(account.connection.base_url):
                continue
            try:
                result = simulator_account_sync(account=account)
            except SimulatorUnavailable as exc:
                raise CommandError(f"simulator not reachable: {exc}") from None
            except ApplicationError as exc:
                self.stderr.write(f"{account.name}: {exc}")
                continue
            synced += 1
            self.stdout.write(
                f"  simulator knows {account.name} ({account.device_id}, "
                f"{result['friends']} friends, {result['groups']} groups); "
                f"webhooks -> {settings.PUBLIC_BASE_URL}"
            )
        if not synced:
            self.stdout.write("  no account points at the simulators")
