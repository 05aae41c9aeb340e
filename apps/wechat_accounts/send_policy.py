"""The send policy of a WeChat account: rate limits, the human-like delay and quiet hours.

The outbound pipeline (``apps.conversations.outbound``) applies it to every send; Moments posts
take their admission from the same limits.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from django.conf import settings
from django.utils import timezone

from apps.core import ratelimit
from apps.core.redis import redis_key
from apps.wechat_accounts.models import WeChatAccount

DAY_WINDOW_MS = 86_400_000


def send_limits(account: WeChatAccount) -> list[ratelimit.Limit]:
    """The limits one send of ``account`` must fit in (all checked atomically together)."""
    window_ms = int(settings.WECHAT_SEND_WINDOW_SECONDS * 1000)
    org_settings = getattr(account.org, "settings", None) or {}
    org_limit = int(
        org_settings.get("wechat_send_limit_per_minute", settings.WECHAT_SEND_ORG_LIMIT_PER_MINUTE)
    )
    return [
        ratelimit.Limit(
            redis_key("rl", "wechat", "acct", account.pk, "min"),
            account.send_limit_per_minute,
            window_ms,
            "account_per_minute",
        ),
        ratelimit.Limit(
            redis_key("rl", "wechat", "acct", account.pk, "day"),
            account.send_limit_per_day,
            DAY_WINDOW_MS,
            "account_per_day",
        ),
        ratelimit.Limit(
            redis_key("rl", "wechat", "org", account.org_id, "min"),
            org_limit,
            window_ms,
            "org_per_minute",
        ),
        ratelimit.Limit(
            redis_key("rl", "wechat", "global", "min"),
            settings.WECHAT_SEND_GLOBAL_LIMIT_PER_MINUTE,
            window_ms,
            "global_per_minute",
        ),
    ]


def human_delay(account: WeChatAccount) -> float:
    """Seconds to wait before a send, drawn from the account's range (scaled by settings)."""
    scale = settings.WECHAT_SEND_DELAY_SCALE
    if scale <= 0:
        return 0.0
    low, high = sorted((account.delay_min_seconds or 0.0, account.delay_max_seconds or 0.0))
    return random.uniform(low, high) * scale


def quiet_hours_end(account: WeChatAccount, now: datetime | None = None) -> datetime | None:
    """When ``now`` falls in the account's quiet hours (organisation time zone), their end."""
    start, end = account.quiet_hours_start, account.quiet_hours_end
    if start is None or end is None or start == end:
        return None
    now = now or timezone.now()
    local = now.astimezone(account.org.tzinfo)
    t = local.timetz().replace(tzinfo=None)
    if start < end:
        inside = start <= t < end
        end_day = local.date()
    else:  # wraps midnight, e.g. 22:00-08:00
        inside = t >= start or t < end
        end_day = local.date() + timedelta(days=1) if t >= start else local.date()
    if not inside:
        return None
    naive = datetime.combine(end_day, end)
    return naive.replace(tzinfo=account.org.tzinfo)


def sends_in_day_window(account: WeChatAccount) -> int:
    """Sends admitted in the account's day window (the rolling 24 hours its daily limit
    counts), read from the limiter without taking an admission."""
    return ratelimit.usage(send_limits(account)[1])
