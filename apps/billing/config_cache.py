"""Per-process cache of what metering reads on every call: which budgets an organisation has and
the price rows of the models it uses.

Metering runs on every AI call and every platform send (issue 19). Prices and budgets change a
few times a month, yet looking them up cost three of the ~11 statements of a reserve + settle
pair, plus the ORM's compile time, for every organisation, with or without budgets. This module
keeps them in process memory, validated on each call by one Redis round trip (``MGET`` of two
tokens):

- ``billing:cfg:global`` changes whenever a global price is written,
- ``billing:cfg:<org_id>`` changes whenever one of the organisation's prices or budgets is.

Writers change the token at once and again after commit (``post_save``/``post_delete`` receivers
connected in ``BillingConfig.ready``; the second change covers a reader that loaded the old rows
between the first change and the commit). A missing token (Redis flushed, a test's wiped prefix)
is created anew, so it never matches an old cache entry. If Redis is unreachable nothing is
cached: every call reads the database as before. ``BILLING_CONFIG_CACHE_SECONDS`` bounds how
long an entry lives even if no token changes (writes that bypass the ORM's signals).

What the cache decides is only *whether* budget work is needed. The hard cap itself is still
checked under the budget rows' locks against fresh usage sums (``services.hardcap``).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass, field

from django.db.models import Q

from apps.billing.models import Budget, ModelPrice
from apps.core.redis import redis_key
from apps.core.token_cache import ProcessCache, tokens

logger = logging.getLogger(__name__)

_GLOBAL = "global"


def _applies(budget: Budget, *, user_id: int | None, wechat_account_id: int | None) -> bool:
    if budget.scope == Budget.Scope.ORG:
        return True
    if budget.scope == Budget.Scope.USER:
        return bool(user_id) and budget.user_id == user_id
    return bool(wechat_account_id) and budget.wechat_account_id == wechat_account_id


@dataclass
class MeteringConfig:
    """An organisation's active budgets (id order) and, filled lazily, its price rows per
    model."""

    org_id: int
    token: tuple | None
    loaded_at: float
    budgets: tuple[Budget, ...]
    prices: dict[tuple[str, str], list[ModelPrice]] = field(default_factory=dict)

    def budgets_applicable(
        self, *, user_id: int | None, wechat_account_id: int | None
    ) -> list[Budget]:
        """The active budgets a call of this user/account counts against (as cached)."""
        return [
            b
            for b in self.budgets
            if _applies(b, user_id=user_id, wechat_account_id=wechat_account_id)
        ]

    def blocking_applies(self, *, user_id: int | None, wechat_account_id: int | None) -> bool:
        """Whether a budget that refuses calls at 100 % counts a call of this user/account."""
        return any(
            b.action == Budget.Action.BLOCK
            for b in self.budgets_applicable(user_id=user_id, wechat_account_id=wechat_account_id)
        )

    def price_in_force(self, *, provider: str, model: str, at: dt.datetime) -> ModelPrice | None:
        """Same answer as ``selectors.price_get_in_force``, from the cached rows."""
        provider = (provider or "").strip().lower()
        model = (model or "").strip()
        rows = self.prices.get((provider, model))
        if rows is None:
            rows = list(
                ModelPrice.objects.filter(
                    Q(org__isnull=True) | Q(org_id=self.org_id),
                    provider__in={provider, ModelPrice.ANY_PROVIDER},
                    model=model,
                )
            )
            self.prices[(provider, model)] = rows
        return best_price(rows, at)


def best_price(candidates, at: dt.datetime) -> ModelPrice | None:
    """The organisation's own price beats a global one, an exact provider beats ``*``, then the
    latest ``valid_from`` not after ``at`` wins."""
    best = None
    best_key = None
    for price in candidates:
        if price.valid_from > at:
            continue
        key = (
            price.org_id is not None,
            price.provider != ModelPrice.ANY_PROVIDER,
            price.valid_from,
        )
        if best_key is None or key > best_key:
            best, best_key = price, key
    return best


_cache = ProcessCache("billing config", "BILLING_CONFIG_CACHE_SECONDS")
_entries = _cache.entries  # this process's entries by organisation


def _token_key(scope) -> str:
    return redis_key("billing", "cfg", scope)


def _tokens(org_id: int) -> tuple | None:
    """The current (global, organisation) tokens; None without Redis."""
    return tokens([_token_key(_GLOBAL), _token_key(org_id)], what="billing config")


def metering_config(org_id: int) -> MeteringConfig:
    """The organisation's metering configuration, from this process's cache when still valid."""
    token = _tokens(org_id)
    entry = _cache.valid(org_id, token)
    if entry is not None:
        return entry
    budgets = tuple(Budget.objects.filter(org_id=org_id, is_active=True).order_by("id"))
    entry = MeteringConfig(org_id=org_id, token=token, loaded_at=time.monotonic(), budgets=budgets)
    return _cache.keep(org_id, entry)


def invalidate(org_id: int | None) -> None:
    """Change the token of an organisation (``None``: the global prices) now and after commit,
    and drop this process's entries it covers."""
    _cache.invalidate(_token_key(_GLOBAL if org_id is None else org_id), key=org_id)


def on_budget_changed(sender, instance: Budget, **kwargs) -> None:
    invalidate(instance.org_id)


def on_price_changed(sender, instance: ModelPrice, **kwargs) -> None:
    invalidate(instance.org_id)


def clear_local() -> None:
    """Forget this process's entries (tests; a worker after fork keeps the parent's otherwise,
    which is harmless: the tokens decide)."""
    _cache.clear()
