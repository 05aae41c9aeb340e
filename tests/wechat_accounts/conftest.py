"""Fixtures: a GeWe connection pointing at the simulator, and accounts logged in through it."""

from __future__ import annotations

import pytest

from apps.integrations.models import PlatformConnection
from apps.wechat_accounts import services
from apps.wechat_accounts.models import WeChatAccount
from tests.fixtures_simulators import SIM_GEWE_TOKEN


@pytest.fixture(autouse=True)
def _pipeline_settings(settings):
    settings.WECHAT_SEND_DELAY_SCALE = 0
    settings.WECHAT_SEND_RETRY_BASE_SECONDS = 0
    settings.WECHAT_SEND_WINDOW_SECONDS = 60


@pytest.fixture
def gewe(simulators_clean):
    return simulators_clean["gewe"]


def make_connection(org, simulators, name="GeWe sim") -> PlatformConnection:
    return PlatformConnection.objects.create(
        org=org,
        provider=PlatformConnection.Provider.GEWE,
        name=name,
        base_url=simulators.urls["gewe"],
        token=SIM_GEWE_TOKEN,
        capabilities=["moments"],
    )


@pytest.fixture
def connection(org, simulators_clean):
    return make_connection(org, simulators_clean)


def login(account: WeChatAccount, gewe) -> WeChatAccount:
    """QR login through the simulator, confirmed on the "phone" at once."""
    services.account_login_start(org=account.org, account_id=account.pk)
    account.refresh_from_db()
    gewe.confirm_login(account.device_id)
    services.account_login_status(org=account.org, account_id=account.pk)
    account.refresh_from_db()
    assert account.status == WeChatAccount.Status.ONLINE
    return account


@pytest.fixture
def account(org, connection):
    return services.account_create(
        org=org, connection=connection, name="Sales 1", delay_min_seconds=0, delay_max_seconds=0
    )


@pytest.fixture
def online_account(account, gewe):
    return login(account, gewe)
