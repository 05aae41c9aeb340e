"""Prices: cost arithmetic, lookups and writes."""

from __future__ import annotations

import datetime as dt
import logging
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils.translation import gettext as _

from apps.billing import selectors
from apps.billing.config_cache import MeteringConfig
from apps.billing.models import (
    ZERO,
    ModelPrice,
)
from apps.billing.services._common import COST_QUANTUM, THOUSAND, PriceNotFound
from apps.core.exceptions import NotFoundError, PermissionDeniedError
from apps.core.services import model_update
from apps.orgs.models import Organization

logger = logging.getLogger(__name__)


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
    config: MeteringConfig | None = None,
) -> tuple[ModelPrice | None, Decimal, str]:
    """Price, cost and currency of a call. Without a local price the provider's own cost is used
    when it is given; otherwise the cost is 0 and ``price`` is None (visible in the admin).
    ``config`` (the metering config cache) answers the price lookup from memory."""
    if config is not None:
        price = config.price_in_force(provider=provider, model=model, at=at)
    else:
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
    model_update(instance=price, data=changes)
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
