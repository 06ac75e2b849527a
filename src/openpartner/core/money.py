"""Money as integer minor units plus an ISO 4217 currency, and the one split function.

Never floats. A decimal string such as ``"12.34"`` is parsed exactly; a currency's exponent comes
from the ISO 4217 table (JPY has 0 minor digits, BHD has 3). Shares of an amount are computed once,
exactly, with :func:`split`.

Every amount a client sends is at most :data:`MAX_AMOUNT` minor units, and a decimal string is
read by its shape (digits, one optional point) before any number is made of it:
``Decimal("1e999997")`` is cheap, but its integer has a million digits and took 21 s of the GIL.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from functools import cache
from typing import Any, TypeVar

from iso4217 import Currency

from openpartner.core.errors import ValidationFailed

K = TypeVar("K", bound=Hashable)

MAX_AMOUNT = 10**15
"""The largest amount one event, deal or flat reward may carry, in minor units: ten trillion
dollars, a trillion dinars. 9,223 of them still fit a signed 64-bit sum, and every SQL sum of
money is exact beyond that anyway (``db/sums.py``)."""
MAX_AMOUNT_CHARS = 32
"""Longest amount string read at all (16 integer digits, a point and trailing zeros)."""
_AMOUNT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


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


def parse_amount(value: int | str, currency: str, loc: Sequence[str] = ("body", "amount")) -> int:
    """An amount in minor units from an int (already minor units) or an exact decimal string.

    ``parse_amount("12.34", "USD") == 1234``; ``parse_amount("1.5", "JPY")`` is rejected because
    yen has no minor units. A string is ASCII digits with at most one point and an optional
    leading ``-``: no exponent, no ``_``, no ``+``, at most :data:`MAX_AMOUNT_CHARS` characters.
    Either way the magnitude is at most :data:`MAX_AMOUNT`; callers refuse negatives where they
    make no sense. Floats are refused by the API schemas before they reach here. Every refusal
    is ``invalid_amount``; its ``errors[0].type`` names the rule broken (at ``loc``).
    """
    if isinstance(value, bool):
        raise _invalid(loc, "amount_type", "Amount must be an integer or a decimal string.")
    minor = value if isinstance(value, int) else _parse_decimal(value.strip(), currency, loc)
    if abs(minor) > MAX_AMOUNT:
        raise _invalid(
            loc, "amount_too_large", f"Amounts are at most {MAX_AMOUNT} minor units (10^15)."
        )
    return minor


def _parse_decimal(text: str, currency: str, loc: Sequence[str]) -> int:
    # The shape and the number of digits are checked on the text, before any conversion.
    if len(text) > MAX_AMOUNT_CHARS:
        raise _invalid(
            loc, "amount_too_long", f"An amount string has at most {MAX_AMOUNT_CHARS} characters."
        )
    match = _AMOUNT.fullmatch(text)
    if match is None:
        raise _invalid(
            loc,
            "amount_format",
            f"{text!r} is not a decimal amount: digits with an optional '.' and leading '-', "
            "no exponent, '+' or '_'.",
        )
    sign, whole, fraction = match.group(1), match.group(2), match.group(3) or ""
    digits = exponent(currency)
    if len(fraction.rstrip("0")) > digits:
        raise _invalid(
            loc,
            "amount_too_precise",
            f"{text!r} has more decimals than {currency} allows ({digits}).",
        )
    minor = int(whole + fraction[:digits].ljust(digits, "0"))
    return -minor if sign else minor


def _invalid(loc: Sequence[str], rule: str, detail: str) -> ValidationFailed:
    return ValidationFailed(
        detail,
        code="invalid_amount",
        errors=[{"loc": list(loc), "msg": detail, "type": rule}],
    )


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
