"""Per-process cache of what the AI turn reads to order its reply apps (``failover.ai_apps_for``):
an organisation's failover list, each account's ``AccountAIApp`` list and the enabled app rows.

Every AI turn needed four statements for them (issue 19), yet they change a few times a month.
Like ``apps.billing.config_cache``, an entry is validated on each use by one Redis round trip: the
token ``conversations:ai-apps:<org_id>`` changes whenever one of the organisation's ``AIApp`` or
``AccountAIApp`` rows is saved or deleted (``post_save``/``post_delete``, connected in
``ConversationsConfig.ready``), at once and again after commit (the second change covers a reader
that loaded the old rows between the first change and the commit). A missing token (Redis
flushed) is created anew, so it never matches an old entry. Without Redis nothing is cached.
``CONVERSATION_AI_APP_CACHE_SECONDS`` bounds an entry's life even if no token changes (writes
that bypass the ORM's signals).

What stays fresh on every turn: the conversation's own app and the account's default app (they
come with the conversation's row) and each app's circuit breaker (Redis).
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

from django.db.models.signals import post_delete, post_save

from apps.core.redis import redis_key
from apps.core.token_cache import ProcessCache, tokens

logger = logging.getLogger(__name__)


@dataclass
class AppListEntry:
    """An organisation's reply app lists, filled lazily; app rows are handed out as copies."""

    org_id: int
    token: tuple | None
    loaded_at: float
    org_list: tuple[int, ...] | None = None
    account_lists: dict[int, tuple[int, ...]] = field(default_factory=dict)
    apps: dict[int, object | None] = field(default_factory=dict)  # None: not enabled / absent

    def org_app_ids(self) -> tuple[int, ...]:
        """The organisation's default reply app, then its reply apps by failover position."""
        from apps.integrations.models import AIApp

        if self.org_list is None:
            reply = AIApp.objects.filter(
                org_id=self.org_id, purpose=AIApp.Purpose.REPLY, enabled=True
            )
            default = list(reply.filter(is_default=True).values_list("id", flat=True))
            ranked = list(
                reply.filter(failover_position__isnull=False)
                .order_by("failover_position", "id")
                .values_list("id", flat=True)
            )
            self.org_list = tuple(default + ranked)
        return self.org_list

    def account_app_ids(self, account_id: int) -> tuple[int, ...]:
        from apps.wechat_accounts.models import AccountAIApp

        listed = self.account_lists.get(account_id)
        if listed is None:
            listed = tuple(
                AccountAIApp.objects.filter(org_id=self.org_id, account_id=account_id)
                .order_by("position", "id")
                .values_list("ai_app_id", flat=True)
            )
            self.account_lists[account_id] = listed
        return listed

    def enabled_apps(self, ids: list[int]) -> dict[int, object]:
        """The enabled apps of the organisation among ``ids`` (copies: callers may change
        them)."""
        from apps.integrations.models import AIApp

        missing = [pk for pk in ids if pk not in self.apps]
        if missing:
            found = {
                app.pk: app
                for app in AIApp.objects.filter(org_id=self.org_id, pk__in=missing, enabled=True)
            }
            for pk in missing:
                self.apps[pk] = found.get(pk)
        return {pk: copy.copy(self.apps[pk]) for pk in ids if self.apps.get(pk) is not None}


_cache = ProcessCache("AI app lists", "CONVERSATION_AI_APP_CACHE_SECONDS")
_entries = _cache.entries  # this process's entries by organisation


def _token_key(org_id: int) -> str:
    return redis_key("conversations", "ai-apps", org_id)


def app_lists(org_id: int) -> AppListEntry:
    """The organisation's entry, from this process's cache when still valid."""
    token = tokens([_token_key(org_id)], what="AI app lists")
    entry = _cache.valid(org_id, token)
    if entry is not None:
        return entry
    return _cache.keep(org_id, AppListEntry(org_id=org_id, token=token, loaded_at=time.monotonic()))


def invalidate(org_id: int) -> None:
    """Change the organisation's token now and after commit, and drop this process's entry."""
    _cache.invalidate(_token_key(org_id), key=org_id)


def _on_change(sender, instance, **kwargs) -> None:
    if instance.org_id:
        invalidate(instance.org_id)


def connect() -> None:
    from apps.integrations.models import AIApp
    from apps.wechat_accounts.models import AccountAIApp

    for model in (AIApp, AccountAIApp):
        name = model._meta.label_lower
        post_save.connect(_on_change, sender=model, dispatch_uid=f"ai-app-cache-s-{name}")
        post_delete.connect(_on_change, sender=model, dispatch_uid=f"ai-app-cache-d-{name}")


def clear_local() -> None:
    """Forget this process's entries (tests)."""
    _cache.clear()
