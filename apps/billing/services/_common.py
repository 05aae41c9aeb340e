"""Cost arithmetic constants and the errors the billing services raise."""

from __future__ import annotations

from decimal import Decimal

from apps.billing.models import Budget
from apps.core.exceptions import ApplicationError, NotFoundError

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
