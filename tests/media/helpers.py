"""E云 / GeWe accounts on the simulators for media tests."""

from __future__ import annotations

from apps.wechat_accounts import services as wechat
from apps.wechat_accounts.models import WeChatAccount
from tests.conversations.helpers import ecloud_connection, gewe_connection  # noqa: F401


def ecloud_login(org, connection, sim, *, name="E云 sales") -> WeChatAccount:
    account = wechat.account_create(
        org=org, connection=connection, name=name, delay_min_seconds=0, delay_max_seconds=0
    )
    wechat.account_login_start(org=org, account_id=account.pk)
    account.refresh_from_db()
    sim.confirm_login(account.device_id)
    wechat.account_login_status(org=org, account_id=account.pk)
    account.refresh_from_db()
    assert account.status == WeChatAccount.Status.ONLINE, account.status_detail
    return account


def live_public_url(settings, live_server, *sims) -> None:
    """The platforms fetch our signed URLs from the live test server; simulators in strict
    mode fail a send whose URL they cannot fetch, as the real platforms do."""
    settings.PUBLIC_BASE_URL = live_server.url
    for sim in sims:
        sim.media.strict = True
