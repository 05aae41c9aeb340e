"""Services of the billing app: pricing, reserve/settle/release, usage recording, budgets.

How other apps meter a call (all idempotent by ``request_id``, unique per organisation)::

    from apps.billing import services as billing

    tokens_in = billing.estimate_tokens(messages)
    reservation = billing.reserve(              # raises billing.BudgetExceeded (HTTP 402)
        org=org, provider="fastgpt", model="qwen-plus", kind="chat",
        estimated_input_tokens=tokens_in, estimated_output_tokens=512,
        user=agent, wechat_account_id=account.id, conversation_id=conv.id, request_id=rid,
    )
    try:
        result = client.chat(...)
    except Exception:
        billing.release(reservation=reservation)
        raise
    billing.settle(reservation=reservation, input_tokens=result.input_tokens,
                   output_tokens=result.output_tokens, provider_cost=result.provider_cost,
                   provider_currency=result.currency)

    # A platform operation (no reservation, never blocked, priced per unit):
    billing.record_usage(org=org, provider="gewe", model="send_text", kind="platform", units=1,
                         wechat_account_id=account.id, request_id=f"gewe:{message.id}")

Concurrency: ``reserve`` locks the active blocking budget rows the call counts against
(``SELECT ... FOR UPDATE`` in id order), reads usage and live holds in one statement after the
lock is granted, and inserts its reservation before the locks are released at commit, so
concurrent callers in any number of processes are serialised per budget and cannot overspend
it. On PostgreSQL all of that is ONE autocommitted statement calling the function
``billing_reserve_check`` (``services.hardcap``): the locks last only while the server runs it.
On SQLite it is one transaction (insert, lock, sums, commit). ``settle`` and
``record_usage`` take no budget lock: they evaluate thresholds in their transaction and again
after commit (whoever commits last sees every write). A call no blocking budget applies to takes
no lock and no transaction. SQLite serialises writers anyway.

Hot path (issue 19): budgets and prices come from a per-process cache validated by a Redis token
(``apps.billing.config_cache``); on PostgreSQL ``reserve`` (with or without blocking budgets),
``settle`` and ``record_usage`` are one statement each (``services._sql``, ``services.hardcap``).
"""

from apps.billing.services._common import (
    COST_QUANTUM,
    THOUSAND,
    BudgetExceeded,
    PriceNotFound,
)
from apps.billing.services.budgets import (
    BUDGET_FIELDS,
    budget_create,
    budget_delete,
    budget_update,
)
from apps.billing.services.maintenance import usage_rebuild
from apps.billing.services.metering import (
    record_usage,
    record_usage_claimed,
    release,
    reservations_expire,
    reserve,
    settle,
)
from apps.billing.services.prices import (
    compute_cost,
    cost_for,
    price_create,
    price_delete,
    price_update,
)
from apps.billing.services.tokens import (
    MESSAGE_OVERHEAD_TOKENS,
    NON_TEXT_PART_TOKENS,
    REPLY_PRIMING_TOKENS,
    estimate_tokens,
)

__all__ = [
    "BUDGET_FIELDS",
    "BudgetExceeded",
    "COST_QUANTUM",
    "MESSAGE_OVERHEAD_TOKENS",
    "NON_TEXT_PART_TOKENS",
    "PriceNotFound",
    "REPLY_PRIMING_TOKENS",
    "THOUSAND",
    "budget_create",
    "budget_delete",
    "budget_update",
    "compute_cost",
    "cost_for",
    "estimate_tokens",
    "price_create",
    "price_delete",
    "price_update",
    "record_usage",
    "record_usage_claimed",
    "release",
    "reservations_expire",
    "reserve",
    "settle",
    "usage_rebuild",
]
