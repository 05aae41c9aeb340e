"""Helpers shared by the core-loop tests: a GeWe (or E云) connection on the simulator, a
logged-in account, an AI app on the OpenAI simulator and posting webhooks like the platform."""

from __future__ import annotations

import json

from django.test import Client

from apps.integrations.models import AIApp, PlatformConnection
from apps.wechat_accounts import services as wechat
from apps.wechat_accounts.models import WeChatAccount
from tests.fixtures_simulators import SIM_ECLOUD_AUTHORIZATION, SIM_GEWE_TOKEN, SIM_OPENAI_KEY


def gewe_connection(org, simulators, name="GeWe sim") -> PlatformConnection:
    return PlatformConnection.objects.create(
        org=org,
        provider=PlatformConnection.Provider.GEWE,
        name=name,
        base_url=simulators.urls["gewe"],
        token=SIM_GEWE_TOKEN,
        capabilities=["moments"],
    )


def ecloud_connection(org, simulators, name="E云 sim") -> PlatformConnection:
    return PlatformConnection.objects.create(
        org=org,
        provider=PlatformConnection.Provider.ECLOUD,
        name=name,
        base_url=simulators.urls["ecloud"],
        token=SIM_ECLOUD_AUTHORIZATION,
    )


def gewe_login(org, connection, gewe, *, name="Sales 1", **fields) -> WeChatAccount:
    account = wechat.account_create(
        org=org,
        connection=connection,
        name=name,
        delay_min_seconds=0,
        delay_max_seconds=0,
        **fields,
    )
    wechat.account_login_start(org=org, account_id=account.pk)
    account.refresh_from_db()
    gewe.confirm_login(account.device_id)
    wechat.account_login_status(org=org, account_id=account.pk)
    account.refresh_from_db()
    assert account.status == WeChatAccount.Status.ONLINE
    return account


def ai_app(org, simulators, *, streaming=False, name="Sales AI", default=True, **fields) -> AIApp:
    return AIApp.objects.create(
        org=org,
        provider=AIApp.Provider.OPENAI,
        name=name,
        base_url=simulators.urls["openai"],
        api_key=SIM_OPENAI_KEY,
        model="qwen-plus",
        streaming=streaming,
        is_default=default,
        **fields,
    )


def post_webhook(connection: PlatformConnection, payload, *, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode()
    return Client().post(connection.webhook_path, data=body, content_type="application/json")


def deliver(connection, payload, capture):
    """POST like the platform, running the on-commit work (processing, AI turn, sending)."""
    with capture(execute=True):
        response = post_webhook(connection, payload)
    assert response.status_code == 200, response.content
    return response
