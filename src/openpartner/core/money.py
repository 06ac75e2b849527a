"""Money as integer minor units plus an ISO 4217 currency, and the one split function.

Never floats. A decimal string such as ``"12.34"`` is parsed exactly; a currency's exponent comes
from the ISO 4217 table (JPY has 0 minor digits, BHD has 3). Shares of an amount are computed once,
exactly, with :func:`split`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import cache
from typing import Any, TypeVar

from iso4217 import Currency

from openpartner.core.errors import ValidationFailed

K = TypeVar("K", bound=Hashable)


@cache
def exponent(currency: str) -> int:
    """Number of minor-unit digits of an ISO 4217 currency; raises for unknown or fund codes."""
    try:
        exp = Currency(currency).exponent
    except ValueError:
        exp = None
    if exp is None:
        raise ValidationFailed(
            f"{currency!r} is not an ISO 4217 currency with minor units.",
            code="invalid_currency",
        )
    return int(exp)


def normalize_currency(currency: str) -> str:
    code = currency.strip().upper()
    exponent(code)
    return code


def parse_amount(value: int | str, currency: str) -> int:
    """An amount in minor units from an int (already minor units) or an exact decimal string.

    ``parse_amount("12.34", "USD") == 1234``; ``parse_amount("1.5", "JPY")`` is rejected because
    yen has no minor units. Floats are refused by the API schemas before they reach here.
    """
    if isinstance(value, bool):
        raise ValidationFailed(
            "Amount must be an integer or a decimal string.", code="invalid_amount"
        )
    if isinstance(value, int):
        return value
    try:
        dec = Decimal(value.strip())
    except InvalidOperation:
        raise ValidationFailed(
            f"{value!r} is not a decimal amount.", code="invalid_amount"
        ) from None
    if not dec.is_finite():
        raise ValidationFailed(f"{value!r} is not a decimal amount.", code="invalid_amount")
    scaled = dec.scaleb(exponent(currency))
    if scaled != scaled.to_integral_value():
        raise ValidationFailed(
            f"{value!r} has more decimals than {currency} allows ({exponent(currency)}).",
            code="invalid_amount",
        )
    return int(scaled)


def format_amount(amount: int, currency: str) -> str:
    """Exact decimal string of a minor-unit amount: ``format_amount(1234, "USD") == "12.34"``."""
    exp = exponent(currency)
    return str(Decimal(amount).scaleb(-exp)) if exp else str(amount)


@dataclass(frozen=True, slots=True)
class Money:
    amount: int
    currency: str

    def as_dict(self) -> dict[str, Any]:
        return {"amount": self.amount, "currency": self.currency}


def split(amount: int, weights: Mapping[K, Fraction | int], order: Mapping[K, Any]) -> dict[K, int]:
    """Split ``amount`` minor units in proportion to ``weights``, summing exactly to ``amount``.

    Each part is first floored (towards zero for negative amounts); the units left over go one by
    one to the parts with the larger remainder, then the part earlier in ``order`` (callers pass
    e.g. ``(first_touch_position, partner_id)``), so the result never depends on the order of the
    input mapping. Weights must be non-negative with a positive total.
    """
    if not weights:
        raise ValueError("split needs at least one weight")
    keys = list(weights)
    # Scale every weight to an integer over one common denominator, so the exact shares
    # magnitude * n_i / N are compared with integer arithmetic only (same result as Fractions,
    # several times faster: replay splits millions of amounts).
    denominators = [w.denominator if isinstance(w, Fraction) else 1 for w in weights.values()]
    common = math.lcm(*denominators)
    numerators = [
        (w.numerator * (common // w.denominator)) if isinstance(w, Fraction) else int(w) * common
        for w in weights.values()
    ]
    if any(n < 0 for n in numerators):
        raise ValueError("weights must be non-negative")
    total = sum(numerators)
    if total <= 0:
        raise ValueError("weights must have a positive total")
    sign = -1 if amount < 0 else 1
    magnitude = abs(amount)
    if len(keys) == 1:
        return {keys[0]: amount}
    parts: dict[K, int] = {}
    remainders: dict[K, int] = {}
    for key, n in zip(keys, numerators, strict=True):
        parts[key], remainders[key] = divmod(magnitude * n, total)
    leftover = magnitude - sum(parts.values())
    if leftover:
        ranked = sorted(keys, key=lambda k: (-remainders[k], order[k]))
        for k in ranked[:leftover]:
            parts[k] += 1
    return {k: sign * v for k, v in parts.items()}
