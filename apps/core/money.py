"""Money as people read it: ``¥12.30`` (2 decimals), ``¥0.0196`` for per-call costs (4).

The one formatter of the project: admin columns, the console's templates (filters ``money`` and
``money4`` in the ``console`` template library) and notification texts call it.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

SYMBOLS = {"CNY": "¥", "RMB": "¥", "USD": "$", "EUR": "€", "HKD": "HK$", "JPY": "¥"}


def format_money(value, currency: str | None = "CNY", places: int = 2) -> str:
    """``value`` rounded half-up to ``places`` decimals, with thousands separators and the
    currency's symbol (or its code for one without a symbol). ``None`` reads as "—"."""
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    quantum = Decimal(1).scaleb(-places)
    amount = amount.quantize(quantum, rounding=ROUND_HALF_UP)
    sign = "-" if amount < 0 else ""
    text = f"{abs(amount):,.{places}f}"
    code = (currency or "CNY").upper()
    symbol = SYMBOLS.get(code)
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {code}"
