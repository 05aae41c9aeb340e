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

Concurrency: ``reserve`` locks the active budget rows the call counts against
(``SELECT ... FOR UPDATE`` in id order), then reads usage and live holds in one statement (one
snapshot) before inserting its reservation, so concurrent callers in any number of processes are
serialised per budget and cannot overspend it. ``settle`` and ``record_usage`` write first and
take the same locks only to evaluate thresholds, briefly. An organisation without budgets takes
no lock. SQLite serialises writers anyway.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from apps.accounts.models import User
from apps.billing import selectors
from apps.billing.models import (
    ZERO,
    Budget,
    BudgetAlert,
    CostLedger,
    Kind,
    ModelPrice,
    Reservation,
    UsageDaily,
    UsageMonthly,
)
from apps.billing.periods import current_period, local_date
from apps.core import events
from apps.core.exceptions import ApplicationError, NotFoundError, PermissionDeniedError
from apps.core.realtime import group_for_monitor, push_on_commit
from apps.orgs.models import Membership, Organization

logger = logging.getLogger(__name__)

COST_QUANTUM = Decimal("0.0000000001")  # ten places: exact for whole tokens at 6-place prices
THOUSAND = Decimal(1000)


class BudgetExceeded(ApplicationError):
    """The call would exceed a budget whose action at 100 % is "block".

    Answers **402 Payment Required**, not 429: retrying soon does not help; the budget must be
    raised or the next period reached. Attributes describe the budget that refused.
    """

    status_code = 402
    code = "budget_exceeded"

    def __init__(
        self, message: str, *, budget: Budget, metric: str, used, limit, requested, period: str
    ):
        super().__init__(message)
        self.budget = budget
        self.metric = metric
        self.used = used
        self.limit = limit
        self.requested = requested
        self.period = period


class PriceNotFound(NotFoundError):
    code = "price_not_found"


# --- Token estimate -------------------------------------------------------------------------------
def _is_cjk(char: str) -> bool:
    code = ord(char)
    return (
        0x2E80 <= code <= 0x9FFF  # CJK radicals, punctuation, kana, unified ideographs
        or 0xAC00 <= code <= 0xD7AF  # Hangul syllables
        or 0xF900 <= code <= 0xFAFF  # CJK compatibility ideographs
        or 0xFF00 <= code <= 0xFFEF  # full-width forms (Chinese punctuation)
        or 0x20000 <= code <= 0x2FA1F  # CJK extensions
    )


_SPACES = re.compile(r"\s+")
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per chat message (OpenAI's published rule)
REPLY_PRIMING_TOKENS = 3
NON_TEXT_PART_TOKENS = 85  # an image or file part, at the providers' low-detail rate


def _text_tokens(text: str) -> int:
    """CJK characters count one token each (Qwen, DeepSeek and GPT-4o tokenisers use 0.6 to 1.3
    per character, so this errs high); other text counts one token per four characters, with
    runs of whitespace collapsed. Always at least 1 for non-empty text."""
    if not text:
        return 0
    text = _SPACES.sub(" ", text)
    cjk = sum(1 for char in text if _is_cjk(char))
    other = len(text) - cjk
    return max(1, cjk + math.ceil(other / 4))


def _content_tokens(content: Any) -> int:
    if content is None:
        return 0
    if isinstance(content, str):
        return _text_tokens(content)
    if isinstance(content, Mapping):
        if isinstance(content.get("text"), str):
            return _text_tokens(content["text"])
        return NON_TEXT_PART_TOKENS
    if isinstance(content, Iterable):
        return sum(_content_tokens(part) for part in content)
    return _text_tokens(str(content))


def estimate_tokens(text_or_messages: str | Iterable[Mapping[str, Any]] | None) -> int:
    """A quick, provider-neutral token estimate of a prompt (the settled usage corrects it).

    A string is estimated as text; a list of chat messages (``{"role", "content"}``, content a
    string or a list of parts) adds 4 tokens per message and 3 for the reply. See
    ``_text_tokens`` for the per-character rule (good for Chinese and English).
    """
    if text_or_messages is None:
        return 0
    if isinstance(text_or_messages, str):
        return _text_tokens(text_or_messages)
    total = 0
    count = 0
    for message in text_or_messages:
        count += 1
        total += MESSAGE_OVERHEAD_TOKENS + _content_tokens(message.get("content"))
        if message.get("name"):
            total += _text_tokens(str(message["name"]))
    return total + (REPLY_PRIMING_TOKENS if count else 0)


# --- Prices ---------------------------------------------------------------------------------------
def compute_cost(
    *, price: ModelPrice, input_tokens: int = 0, output_tokens: int = 0, units: int = 0
) -> Decimal:
    """``in × input/1K + out × output/1K + units × unit price``, exact (Decimal, 10 places)."""
    cost = (
        Decimal(int(input_tokens)) * price.input_price_per_1k / THOUSAND
        + Decimal(int(output_tokens)) * price.output_price_per_1k / THOUSAND
        + Decimal(int(units)) * price.unit_price
    )
    return cost.quantize(COST_QUANTUM)


def cost_for(
    org: Organization,
    provider: str,
    model: str,
    input_tokens: int = 0,
    output_tokens: int = 0,
    units: int = 0,
    kind: str | None = None,
    *,
    at: dt.datetime | None = None,
) -> Decimal:
    """The cost of a call at the price in force (organisation price over global; the latest
    ``valid_from`` not after ``at``), in that price's currency. Raises ``PriceNotFound``.

    ``kind`` is accepted for symmetry with the ledger; prices do not vary by kind.
    """
    price = selectors.price_get_in_force(org=org, provider=provider, model=model, at=at)
    if price is None:
        raise PriceNotFound(
            _("No price for %(provider)s/%(model)s.") % {"provider": provider, "model": model}
        )
    return compute_cost(
        price=price, input_tokens=input_tokens, output_tokens=output_tokens, units=units
    )


def _normalise_currency(value: str | None) -> str:
    value = (value or "").strip().upper()
    return "CNY" if value == "RMB" else value


def _price_and_cost(
    *,
    org: Organization,
    provider: str,
    model: str,
    input_tokens: int,
    output_tokens: int,
    units: int,
    at: dt.datetime,
    provider_cost: Decimal | None = None,
    provider_currency: str = "",
) -> tuple[ModelPrice | None, Decimal, str]:
    """Price, cost and currency of a call. Without a local price the provider's own cost is used
    when it is given; otherwise the cost is 0 and ``price`` is None (visible in the admin)."""
    price = selectors.price_get_in_force(org=org, provider=provider, model=model, at=at)
    if price is not None:
        cost = compute_cost(
            price=price, input_tokens=input_tokens, output_tokens=output_tokens, units=units
        )
        return price, cost, price.currency
    default_currency = settings.BILLING_DEFAULT_CURRENCY
    if provider_cost is not None and provider_cost > 0:
        currency = _normalise_currency(provider_currency) or default_currency
        return None, Decimal(provider_cost).quantize(COST_QUANTUM), currency
    logger.warning(
        "billing: no price for %s/%s (org %s); cost recorded as 0", provider, model, org.pk
    )
    return None, ZERO, default_currency


@transaction.atomic
def price_create(*, org: Organization, **fields) -> ModelPrice:
    """An organisation's own price (overrides the global default for that model)."""
    price = ModelPrice(org=org, **fields)
    price.full_clean()
    price.save()
    return price


@transaction.atomic
def price_update(*, org: Organization, price_id: int, **changes) -> ModelPrice:
    price = _org_price_for_write(org=org, price_id=price_id)
    for name, value in changes.items():
        setattr(price, name, value)
    price.full_clean()
    price.save(update_fields=[*changes, "updated_at"])
    return price


@transaction.atomic
def price_delete(*, org: Organization, price_id: int) -> None:
    _org_price_for_write(org=org, price_id=price_id).delete()


def _org_price_for_write(*, org: Organization, price_id: int) -> ModelPrice:
    price = (
        ModelPrice.objects.filter(Q(org__isnull=True) | Q(org=org), id=price_id)
        .select_for_update()
        .first()
    )
    if price is None:
        raise NotFoundError(_("Price not found."))
    if price.org_id is None:
        raise PermissionDeniedError(
            _("Global prices are read-only here; add an organisation price to override one.")
        )
    return price


# --- Budgets --------------------------------------------------------------------------------------
BUDGET_FIELDS = {
    "name",
    "scope",
    "user",
    "wechat_account_id",
    "money_limit",
    "token_limit",
    "currency",
    "soft_thresholds",
    "action",
    "is_active",
}


def _check_budget_user(org: Organization, user: User | None) -> None:
    if user is not None and not Membership.objects.filter(org=org, user=user).exists():
        raise ApplicationError(
            _("The user is not a member of this organization."), fields={"user": ["not_member"]}
        )


@transaction.atomic
def budget_create(*, org: Organization, **fields) -> Budget:
    unknown = set(fields) - BUDGET_FIELDS
    if unknown:
        raise ApplicationError(_("Unknown budget fields: %s") % ", ".join(sorted(unknown)))
    fields.setdefault("soft_thresholds", list(settings.BILLING_DEFAULT_SOFT_THRESHOLDS))
    fields.setdefault("currency", settings.BILLING_DEFAULT_CURRENCY)
    _check_budget_user(org, fields.get("user"))
    budget = Budget(org=org, **fields)
    budget.full_clean()
    budget.save()
    return budget


@transaction.atomic
def budget_update(*, org: Organization, budget_id: int, **changes) -> Budget:
    unknown = set(changes) - BUDGET_FIELDS
    if unknown:
        raise ApplicationError(_("Unknown budget fields: %s") % ", ".join(sorted(unknown)))
    budget = Budget.objects.select_for_update().filter(org=org, id=budget_id).first()
    if budget is None:
        raise NotFoundError(_("Budget not found."))
    if "user" in changes:
        _check_budget_user(org, changes["user"])
    for name, value in changes.items():
        setattr(budget, name, value)
    budget.full_clean()
    budget.save(update_fields=[*changes, "updated_at"])
    return budget


@transaction.atomic
def budget_delete(*, org: Organization, budget_id: int) -> None:
    deleted, _rows = Budget.objects.filter(org=org, id=budget_id).delete()
    if not deleted:
        raise NotFoundError(_("Budget not found."))


def _lock_budgets(
    *, org: Organization, user_id: int | None, wechat_account_id: int | None
) -> list[Budget]:
    return list(
        selectors.budgets_applicable(
            org=org, user_id=user_id, wechat_account_id=wechat_account_id
        ).select_for_update()
    )


# --- Reserve / settle / release -------------------------------------------------------------------
def reserve(
    *,
    org: Organization,
    provider: str,
    model: str,
    kind: str,
    estimated_input_tokens: int,
    estimated_output_tokens: int | None = None,
    request_id: str,
    user: User | None = None,
    wechat_account_id: int | None = None,
    conversation_id: int | None = None,
    sop_run_id: int | None = None,
    estimated_units: int = 0,
) -> Reservation:
    """Hold the estimated cost of a call before making it, or raise ``BudgetExceeded``.

    Checks every active budget the call counts against (organisation, the user's, the
    account's): usage this month + live holds + this estimate must stay within each limit of a
    "block" budget. Calling it again with the same ``request_id`` returns the same reservation
    while it is held or settled; after a release or expiry (a retried call) the same row is
    checked and held again.
    ``estimated_output_tokens`` defaults to ``BILLING_DEFAULT_OUTPUT_TOKENS``.

    A refusal records the budget's 100 % alert for the period (once) and sends
    ``budget_threshold_crossed`` after commit.
    """
    if estimated_output_tokens is None:
        estimated_output_tokens = settings.BILLING_DEFAULT_OUTPUT_TOKENS
    try:
        return _reserve(
            org=org,
            provider=provider,
            model=model,
            kind=kind,
            estimated_input_tokens=estimated_input_tokens,
            estimated_output_tokens=estimated_output_tokens,
            request_id=request_id,
            user=user,
            wechat_account_id=wechat_account_id,
            conversation_id=conversation_id,
            sop_run_id=sop_run_id,
            estimated_units=estimated_units,
        )
    except BudgetExceeded as exc:
        _alert_refusal(org=org, exc=exc)
        raise
    except IntegrityError:
        # A concurrent call with the same request id inserted first: return its reservation.
        existing = selectors.reservation_get(org=org, request_id=request_id)
        if existing is None:
            raise
        return existing


@transaction.atomic
def _reserve(
    *,
    org,
    provider,
    model,
    kind,
    estimated_input_tokens,
    estimated_output_tokens,
    request_id,
    user,
    wechat_account_id,
    conversation_id,
    sop_run_id,
    estimated_units,
) -> Reservation:
    existing = selectors.reservation_get(org=org, request_id=request_id)
    if existing is not None and existing.status in (
        Reservation.Status.HELD,
        Reservation.Status.SETTLED,
    ):
        return existing
    # New, or a retry after a release/expiry: the hold is taken (and checked) again.
    now = timezone.now()
    user_id = getattr(user, "pk", None)
    _price, cost, currency = _price_and_cost(
        org=org,
        provider=provider,
        model=model,
        input_tokens=estimated_input_tokens,
        output_tokens=estimated_output_tokens,
        units=estimated_units,
        at=now,
    )
    tokens = int(estimated_input_tokens) + int(estimated_output_tokens)
    budgets = _lock_budgets(org=org, user_id=user_id, wechat_account_id=wechat_account_id)
    blocking = [b for b in budgets if b.action == Budget.Action.BLOCK]
    if blocking:
        _check_fits(org=org, budgets=blocking, now=now, cost=cost, currency=currency, tokens=tokens)
    reservation = existing or Reservation(org=org, request_id=request_id)
    fields = dict(
        status=Reservation.Status.HELD,
        finished_at=None,
        user=user,
        wechat_account_id=wechat_account_id,
        conversation_id=conversation_id,
        sop_run_id=sop_run_id,
        provider=provider,
        model=model,
        kind=kind,
        estimated_input_tokens=estimated_input_tokens,
        estimated_output_tokens=estimated_output_tokens,
        estimated_units=estimated_units,
        estimated_cost=cost,
        currency=currency,
        expires_at=now + dt.timedelta(seconds=settings.BILLING_RESERVATION_TTL_SECONDS),
    )
    for name, value in fields.items():
        setattr(reservation, name, value)
    # Hot path: the foreign keys are instances we hold and the unique request id is enforced by
    # the database (``reserve`` catches a racing duplicate), so skip those validation queries.
    reservation.full_clean(
        exclude=["org", "user"], validate_unique=False, validate_constraints=False
    )
    if existing is None:
        reservation.save()
    else:
        # Reactivate only if nobody settled or re-held it meanwhile.
        reactivated = Reservation.objects.filter(
            pk=existing.pk, status__in=[Reservation.Status.RELEASED, Reservation.Status.EXPIRED]
        ).update(**fields, updated_at=now)
        if not reactivated:
            return Reservation.objects.get(pk=existing.pk)
    return reservation


def _check_fits(
    *,
    org: Organization,
    budgets: list[Budget],
    now: dt.datetime,
    cost: Decimal,
    currency: str,
    tokens: int,
) -> None:
    """Raise ``BudgetExceeded`` for the first budget that this call would take over its limit
    (ledger this month + live holds + this estimate). The budgets are locked by the caller."""
    period_key = current_period(org, now).key
    # One statement, hence one snapshot (see selectors.budget_sums).
    sums = selectors.budget_sums(budgets=budgets, org=org, period_key=period_key, held_at=now)
    for budget in budgets:
        used_money = sums[budget.pk].money_used + sums[budget.pk].money_held
        used_tokens = sums[budget.pk].tokens_used + sums[budget.pk].tokens_held
        if (
            budget.money_limit is not None
            and currency == budget.currency
            and used_money + cost > budget.money_limit
        ):
            raise BudgetExceeded(
                _("The monthly budget “%(budget)s” would be exceeded.") % {"budget": budget},
                budget=budget,
                metric="money",
                used=used_money,
                limit=budget.money_limit,
                requested=cost,
                period=period_key,
            )
        if budget.token_limit is not None and used_tokens + tokens > budget.token_limit:
            raise BudgetExceeded(
                _("The monthly token quota “%(budget)s” would be exceeded.") % {"budget": budget},
                budget=budget,
                metric="tokens",
                used=used_tokens,
                limit=budget.token_limit,
                requested=tokens,
                period=period_key,
            )


def settle(
    *,
    reservation: Reservation,
    input_tokens: int | None,
    output_tokens: int | None,
    units: int | None = None,
    provider_cost: Decimal | None = None,
    provider_currency: str | None = "",
    model: str | None = None,
    usage_source: str | None = None,
) -> CostLedger:
    """Record the actual usage of a reserved call in the ledger and drop the hold.

    Token counts of None (the provider reported no usage) fall back to the reservation's
    estimate, recorded with ``usage_source="estimated"``. ``model`` overrides the reserved model
    when the provider answered with another one. Settling twice returns the first ledger row.
    A released or expired reservation can still be settled: the call happened, it costs.
    """
    org = reservation.org  # From the reservation itself: it cannot name another org's row.
    try:
        return _settle(
            org=org,
            reservation_id=reservation.pk,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            units=units,
            provider_cost=provider_cost,
            provider_currency=provider_currency or "",
            model=model,
            usage_source=usage_source,
        )
    except IntegrityError:
        # The request id was already recorded (``record_usage`` with the same id).
        existing = selectors.ledger_get(org=org, request_id=reservation.request_id)
        if existing is None:
            raise
        Reservation.objects.filter(org=org, id=reservation.pk).exclude(
            status=Reservation.Status.SETTLED
        ).update(status=Reservation.Status.SETTLED, finished_at=timezone.now())
        return existing


@transaction.atomic
def _settle(
    *,
    org,
    reservation_id,
    input_tokens,
    output_tokens,
    units,
    provider_cost,
    provider_currency,
    model,
    usage_source,
) -> CostLedger:
    # Lock order: this reservation, the aggregate rows (upserts), then the budgets (only to
    # evaluate thresholds, after the writes). Nothing takes them the other way round:
    # ``reserve`` holds budget locks but only reads and inserts a new reservation.
    reservation = Reservation.objects.select_for_update().filter(org=org, id=reservation_id).first()
    if reservation is None:
        raise NotFoundError(_("Reservation not found."))
    if reservation.status == Reservation.Status.SETTLED:
        existing = selectors.ledger_get(org=org, request_id=reservation.request_id)
        if existing is not None:
            return existing
    estimated = input_tokens is None or output_tokens is None
    source = usage_source or (
        CostLedger.UsageSource.ESTIMATED if estimated else CostLedger.UsageSource.REPORTED
    )
    entry = _write_ledger(
        org=org,
        reservation=reservation,
        request_id=reservation.request_id,
        user_id=reservation.user_id,
        wechat_account_id=reservation.wechat_account_id,
        conversation_id=reservation.conversation_id,
        sop_run_id=reservation.sop_run_id,
        provider=reservation.provider,
        model=model or reservation.model,
        kind=reservation.kind,
        input_tokens=reservation.estimated_input_tokens if input_tokens is None else input_tokens,
        output_tokens=(
            reservation.estimated_output_tokens if output_tokens is None else output_tokens
        ),
        units=reservation.estimated_units if units is None else units,
        provider_cost=provider_cost,
        provider_currency=provider_currency,
        usage_source=source,
    )
    reservation.status = Reservation.Status.SETTLED
    reservation.finished_at = entry.created_at
    reservation.save(update_fields=["status", "finished_at", "updated_at"])
    return entry


@transaction.atomic
def release(*, reservation: Reservation) -> Reservation:
    """Drop the hold of a call that failed before costing anything. No-op unless held."""
    now = timezone.now()
    Reservation.objects.filter(
        org_id=reservation.org_id, id=reservation.pk, status=Reservation.Status.HELD
    ).update(status=Reservation.Status.RELEASED, finished_at=now, updated_at=now)
    return Reservation.objects.get(org_id=reservation.org_id, id=reservation.pk)


@transaction.atomic
def reservations_expire(*, org: Organization, now: dt.datetime | None = None) -> int:
    """Mark held reservations past ``expires_at`` as expired (left by a crashed worker).

    Expired holds already stopped counting at ``expires_at``; this is the bookkeeping. The
    conditional update makes it idempotent and safe against a concurrent settle.
    """
    now = now or timezone.now()
    return Reservation.objects.filter(
        org=org, status=Reservation.Status.HELD, expires_at__lte=now
    ).update(status=Reservation.Status.EXPIRED, finished_at=now, updated_at=now)


def record_usage(
    *,
    org: Organization,
    provider: str,
    model: str,
    request_id: str,
    kind: str = Kind.PLATFORM,
    units: int = 0,
    input_tokens: int = 0,
    output_tokens: int = 0,
    user: User | None = None,
    wechat_account_id: int | None = None,
    conversation_id: int | None = None,
    sop_run_id: int | None = None,
    provider_cost: Decimal | None = None,
    provider_currency: str = "",
    usage_source: str = CostLedger.UsageSource.REPORTED,
) -> CostLedger:
    """Record a call made without a reservation (platform operations, priced per unit; or an
    AI call that was not reserved). Never refused; counts against budgets and raises their
    threshold alerts. Recording the same ``request_id`` twice returns the first row."""
    try:
        return _record_usage(
            org=org,
            provider=provider,
            model=model,
            request_id=request_id,
            kind=kind,
            units=units,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            user=user,
            wechat_account_id=wechat_account_id,
            conversation_id=conversation_id,
            sop_run_id=sop_run_id,
            provider_cost=provider_cost,
            provider_currency=provider_currency,
            usage_source=usage_source,
        )
    except IntegrityError:
        existing = selectors.ledger_get(org=org, request_id=request_id)
        if existing is None:
            raise
        return existing


@transaction.atomic
def _record_usage(*, org, request_id, user, wechat_account_id, **fields) -> CostLedger:
    existing = selectors.ledger_get(org=org, request_id=request_id)
    if existing is not None:
        return existing
    user_id = getattr(user, "pk", None)
    return _write_ledger(
        org=org,
        reservation=None,
        request_id=request_id,
        user_id=user_id,
        wechat_account_id=wechat_account_id,
        **fields,
    )


def _write_ledger(
    *,
    org: Organization,
    reservation: Reservation | None,
    request_id: str,
    user_id: int | None,
    wechat_account_id: int | None,
    conversation_id: int | None,
    sop_run_id: int | None,
    provider: str,
    model: str,
    kind: str,
    input_tokens: int,
    output_tokens: int,
    units: int,
    provider_cost: Decimal | None,
    provider_currency: str,
    usage_source: str,
) -> CostLedger:
    """Insert the ledger row, add it to the daily and monthly sums, and check thresholds, in
    the caller's transaction."""
    now = timezone.now()
    price, cost, currency = _price_and_cost(
        org=org,
        provider=provider,
        model=model,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        units=units,
        at=now,
        provider_cost=provider_cost,
        provider_currency=provider_currency,
    )
    entry = CostLedger(
        org=org,
        request_id=request_id,
        reservation=reservation,
        user_id=user_id,
        wechat_account_id=wechat_account_id,
        conversation_id=conversation_id,
        sop_run_id=sop_run_id,
        provider=provider,
        model=model,
        kind=kind,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        units=units,
        cost=cost,
        currency=currency,
        provider_cost=None if provider_cost is None else Decimal(provider_cost),
        provider_currency=_normalise_currency(provider_currency),
        usage_source=usage_source,
        price=price,
        created_at=now,
    )
    # Hot path: related rows are ones we just read, and the unique request id is enforced by
    # the database (the public functions catch a racing duplicate).
    entry.full_clean(
        exclude=["org", "user", "reservation", "price"],
        validate_unique=False,
        validate_constraints=False,
    )
    entry.save()
    _usage_add(entry=entry, org=org)
    # Thresholds are evaluated under the budget locks, taken only now (after the writes) so
    # that concurrent settlements hold them briefly; whoever makes the sum cross sees it.
    budgets = _lock_budgets(org=org, user_id=user_id, wechat_account_id=wechat_account_id)
    if budgets:
        _evaluate_thresholds(org=org, budgets=budgets, now=now)
    return entry


def _upsert_add(model, key: dict, deltas: dict) -> None:
    """Add ``deltas`` to the aggregate row ``key`` or create it, in one atomic statement
    (``INSERT ... ON CONFLICT DO UPDATE``, PostgreSQL and SQLite alike)."""
    meta = model._meta
    quote = connection.ops.quote_name
    table = quote(meta.db_table)
    names = [*key, *deltas]
    fields = [meta.get_field(name) for name in names]
    columns = [quote(field.column) for field in fields]
    params = [
        field.get_db_prep_save(value, connection)
        for field, value in zip(fields, [*key.values(), *deltas.values()], strict=True)
    ]
    conflict = ", ".join(columns[: len(key)])
    updates = ", ".join(
        f"{column} = {table}.{column} + excluded.{column}" for column in columns[len(key) :]
    )
    # Identifiers come from model metadata (quoted), values are parameters.
    placeholders = ", ".join(["%s"] * len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders}) "  # noqa: S608
    sql += f"ON CONFLICT ({conflict}) DO UPDATE SET {updates}"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def _usage_add(*, entry: CostLedger, org: Organization) -> None:
    day = local_date(org, entry.created_at)
    user_id = entry.user_id or 0
    account_id = entry.wechat_account_id or 0
    _upsert_add(
        UsageDaily,
        {
            "org_id": org.pk,
            "date": day,
            "provider": entry.provider,
            "model": entry.model,
            "kind": entry.kind,
            "user_id": user_id,
            "wechat_account_id": account_id,
            "currency": entry.currency,
        },
        {
            "calls": 1,
            "input_tokens": entry.input_tokens,
            "output_tokens": entry.output_tokens,
            "units": entry.units,
            "cost": entry.cost,
        },
    )
    _upsert_add(
        UsageMonthly,
        {
            "org_id": org.pk,
            "period": day.strftime("%Y-%m"),
            "user_id": user_id,
            "wechat_account_id": account_id,
            "currency": entry.currency,
        },
        {"calls": 1, "tokens": entry.total_tokens, "cost": entry.cost},
    )


# --- Thresholds -----------------------------------------------------------------------------------
def _evaluate_thresholds(*, org: Organization, budgets: list[Budget], now: dt.datetime) -> None:
    """Record (once per period) every threshold the ledger usage has reached. Held
    reservations do not count: only money actually spent crosses a threshold."""
    statuses = selectors.budget_statuses(budgets=budgets, org=org, at=now, with_held=False)
    crossed = {s.budget.pk: [t for t in s.budget.thresholds if s.percent >= t] for s in statuses}
    if not any(crossed.values()):
        return
    period_key = statuses[0].period.key
    fired = set(
        BudgetAlert.objects.filter(
            budget_id__in=[pk for pk, ts in crossed.items() if ts], period=period_key
        ).values_list("budget_id", "threshold")
    )
    for status in statuses:
        for threshold in crossed[status.budget.pk]:
            if (status.budget.pk, threshold) not in fired:
                _alert_once(
                    org=org,
                    budget=status.budget,
                    period_key=period_key,
                    threshold=threshold,
                    metric=status.metric,
                    used=status.used,
                    limit=status.limit,
                    percent=status.percent,
                )


def _alert_once(
    *,
    org: Organization,
    budget: Budget,
    period_key: str,
    threshold: int,
    metric: str,
    used: Decimal,
    limit: Decimal,
    percent: Decimal,
    blocked: bool = False,
) -> BudgetAlert | None:
    """Record the threshold for the period; if it is new, announce it after commit."""
    alert = BudgetAlert(
        org=org,
        budget=budget,
        period=period_key,
        threshold=threshold,
        metric=metric,
        used=Decimal(used),
        limit=Decimal(limit),
        percent=Decimal(percent).quantize(Decimal("0.01")),
        blocked=blocked,
    )
    alert.full_clean(validate_unique=False, validate_constraints=False)
    try:
        with transaction.atomic():
            alert.save()
    except IntegrityError:
        return None  # Already fired this period.
    payload = {
        "org_id": org.pk,
        "budget_id": budget.pk,
        "threshold": threshold,
        "period": period_key,
        "used": alert.used,
        "limit": alert.limit,
    }
    extra = {
        "metric": metric,
        "percent": alert.percent,
        "currency": budget.currency,
        "scope": budget.scope,
        "action": budget.action,
        "blocked": blocked,
        "alert_id": alert.pk,
    }
    transaction.on_commit(
        lambda: events.budget_threshold_crossed.send(sender=Budget, **payload, **extra)
    )
    push_on_commit(
        "stats_update",
        {"source": "billing", "event": "budget_threshold_crossed", **payload, **extra},
        groups=[group_for_monitor(org.pk)],
    )
    return alert


@transaction.atomic
def _alert_refusal(*, org: Organization, exc: BudgetExceeded) -> None:
    """A refused call means the budget is exhausted: raise its 100 % alert once per period."""
    budget = exc.budget
    limit = Decimal(exc.limit)
    used = Decimal(exc.used)
    percent = selectors.percent_of(used, limit) or Decimal(100)
    _alert_once(
        org=org,
        budget=budget,
        period_key=exc.period,
        threshold=Budget.HARD_THRESHOLD,
        metric=exc.metric,
        used=used,
        limit=limit,
        percent=percent,
        blocked=True,
    )


# --- Maintenance ----------------------------------------------------------------------------------
@transaction.atomic
def usage_rebuild(*, org: Organization, batch_size: int = 5000) -> int:
    """Recompute the organisation's daily and monthly sums from its ledger (repair tool, and
    after a bulk import). Uses the current time zone of the organisation. Returns the number
    of daily rows written."""
    from django.db.models import Count, Sum
    from django.db.models.functions import Coalesce, TruncDate

    UsageDaily.objects.filter(org=org).delete()
    UsageMonthly.objects.filter(org=org).delete()
    grouped = (
        CostLedger.objects.filter(org=org)
        .annotate(
            day=TruncDate("created_at", tzinfo=org.tzinfo),
            uid=Coalesce("user_id", 0),
            aid=Coalesce("wechat_account_id", 0),
        )
        .values("day", "provider", "model", "kind", "uid", "aid", "currency")
        .annotate(
            n=Count("id"),
            tin=Sum("input_tokens"),
            tout=Sum("output_tokens"),
            u=Sum("units"),
            c=Sum("cost"),
        )
        .order_by()
    )
    daily: list[UsageDaily] = []
    monthly: dict[tuple, list] = {}
    written = 0
    for row in grouped.iterator(chunk_size=batch_size):
        daily.append(
            UsageDaily(
                org=org,
                date=row["day"],
                provider=row["provider"],
                model=row["model"],
                kind=row["kind"],
                user_id=row["uid"],
                wechat_account_id=row["aid"],
                currency=row["currency"],
                calls=row["n"],
                input_tokens=row["tin"] or 0,
                output_tokens=row["tout"] or 0,
                units=row["u"] or 0,
                cost=row["c"] or ZERO,
            )
        )
        key = (row["day"].strftime("%Y-%m"), row["uid"], row["aid"], row["currency"])
        acc = monthly.setdefault(key, [0, 0, ZERO])
        acc[0] += row["n"]
        acc[1] += (row["tin"] or 0) + (row["tout"] or 0)
        acc[2] += row["c"] or ZERO
        if len(daily) >= batch_size:
            UsageDaily.objects.bulk_create(daily)
            written += len(daily)
            daily = []
    UsageDaily.objects.bulk_create(daily)
    written += len(daily)
    UsageMonthly.objects.bulk_create(
        [
            UsageMonthly(
                org=org,
                period=period,
                user_id=uid,
                wechat_account_id=aid,
                currency=currency,
                calls=calls,
                tokens=tokens,
                cost=cost,
            )
            for (period, uid, aid, currency), (calls, tokens, cost) in monthly.items()
        ],
        batch_size=batch_size,
    )
    return written
