"""The platform client of a WeChat account, built by the integrations app's factory (call log
rows in ``IntegrationCall`` carry the account id)."""

from __future__ import annotations

from typing import Any

from apps.integrations.clients.base import RetryPolicy
from apps.integrations.clients.wechat import WeChatPlatformClient
from apps.wechat_accounts.models import WeChatAccount


def client_for_account(
    account: WeChatAccount, *, for_send: bool = False, recorder: Any = None
) -> WeChatPlatformClient:
    """A GeWe / E云管家 client for ``account``'s connection. ``for_send``: one attempt only;
    the outbound pipeline owns retries (rescheduled tasks with backoff, never in-worker
    sleeps, never a resend after an ambiguous failure). ``recorder``: the call log's recorder
    (default: one row written per attempt)."""
    from apps.integrations.services import wechat_client_for

    kwargs: dict[str, Any] = {}
    if recorder is not None:
        kwargs["recorder"] = recorder
    if for_send:
        kwargs["retry"] = RetryPolicy(max_attempts=1)
    return wechat_client_for(account.connection, wechat_account_id=account.pk, **kwargs)
