"""Exact shares as text: a fraction ``"5/11"`` and a percentage ``"45.45"`` (never a float)."""

from __future__ import annotations

from fractions import Fraction


def fraction_str(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def percent_str(value: Fraction) -> str:
    """``value`` as a percentage with two decimals, rounded once, half to even: 5/11 -> 45.45."""
    hundredths = round(value * 10_000)
    sign = "-" if hundredths < 0 else ""
    whole, rest = divmod(abs(hundredths), 100)
    return f"{sign}{whole}.{rest:02d}"


def ratio(value: Fraction) -> dict[str, str]:
    return {"fraction": fraction_str(value), "percent": percent_str(value)}
