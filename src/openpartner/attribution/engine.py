"""``attribute``: touches + conversion + model + window -> exact credits per partner. No I/O.

The steps, each deterministic:

1. Eligibility. A touch earns nothing, for the first reason that applies, when it is
   ``after_conversion`` (later than the conversion plus a 5-minute clock-skew grace),
   ``outside_window`` (earlier than the conversion minus the window), ``flagged``, or from a
   ``partner_revoked``. Both time boundaries are inclusive: a touch exactly 5 minutes after, or
   exactly ``window_days`` before, still counts.
2. Order. Eligible touches are sorted by (time, ingest sequence, id); input order never matters.
3. Weights. One eligible touch earns 100 % under every model; otherwise the model gives each touch
   an exact ``Fraction``, summing to 1.
4. Partners. A partner's weight is the sum of its touches'. Partners whose weight is 0 (e.g. the
   middle of ``position`` with a zero middle weight) get no credit.
5. Money. The amount is split once with ``core.money.split`` (largest remainder); a leftover unit
   goes to the larger remainder, then to the partner whose first credited touch came earlier, then
   to the smaller partner id. Amounts always sum exactly to the conversion amount.

No eligible touch: no credits; the conversion is unattributed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from typing import Final

from openpartner.attribution.inputs import Conversion, Touch, touch_order
from openpartner.attribution.models import ModelSpec
from openpartner.core.errors import ValidationFailed
from openpartner.core.money import split

ENGINE_VERSION: Final = "1"
"""Stored on every attribution row. Bump it whenever the same input could give another output."""

CLOCK_SKEW_GRACE: Final = timedelta(minutes=5)
MAX_WINDOW_DAYS: Final = 36_500

AFTER_CONVERSION: Final = "after_conversion"
OUTSIDE_WINDOW: Final = "outside_window"
FLAGGED: Final = "flagged"
PARTNER_REVOKED: Final = "partner_revoked"
EXCLUSION_REASONS: Final = (AFTER_CONVERSION, OUTSIDE_WINDOW, FLAGGED, PARTNER_REVOKED)
"""In the order they are checked: a touch carries the first that applies."""

_ONE: Final = Fraction(1)


@dataclass(frozen=True, slots=True)
class WeightedTouch:
    touch: Touch
    weight: Fraction
    """Exact share of the conversion this touch earned (0 is possible, e.g. a non-last click)."""


@dataclass(frozen=True, slots=True)
class ExcludedTouch:
    touch: Touch
    reason: str
    """One of ``EXCLUSION_REASONS``."""


@dataclass(frozen=True, slots=True)
class Credit:
    partner_id: str
    weight: Fraction
    """Exact share of the conversion: the sum of the partner's touch weights."""
    amount: int
    """Minor units of the conversion's currency; the credits' amounts sum to its amount."""
    touch_ids: tuple[str, ...]
    """The partner's touches with a positive weight, in order."""


@dataclass(frozen=True, slots=True)
class Attribution:
    """Everything needed to store, explain and reproduce one conversion's attribution."""

    spec: ModelSpec
    window_days: int
    conversion: Conversion
    touches: tuple[WeightedTouch, ...]
    """Eligible touches in order (time, ingest sequence, id); the index is the position."""
    excluded: tuple[ExcludedTouch, ...]
    """Touches that earn nothing, in the same order, each with its reason."""
    credits: tuple[Credit, ...]
    """One per credited partner, ordered by the position of the partner's first credited touch.
    Empty when no touch is eligible."""
    engine_version: str = ENGINE_VERSION

    @property
    def attributed(self) -> bool:
        return bool(self.credits)

    def amounts(self) -> dict[str, int]:
        return {c.partner_id: c.amount for c in self.credits}

    def weights(self) -> dict[str, Fraction]:
        return {c.partner_id: c.weight for c in self.credits}


def check_window(window_days: int) -> int:
    if isinstance(window_days, bool) or not isinstance(window_days, int):
        raise ValidationFailed("The window must be a whole number of days.", code="invalid_window")
    if not 0 <= window_days <= MAX_WINDOW_DAYS:
        raise ValidationFailed(
            f"The window must be between 0 and {MAX_WINDOW_DAYS} days.", code="invalid_window"
        )
    return window_days


def attribute(
    touches: Iterable[Touch], conversion: Conversion, spec: ModelSpec, window_days: int
) -> Attribution:
    """Attribute ``conversion`` to the partners behind ``touches`` under ``spec``.

    ``window_days`` is the program's attribution window. Touch ids must be unique.
    """
    at = conversion.at
    latest = at + CLOCK_SKEW_GRACE
    earliest = at - timedelta(days=check_window(window_days))
    eligible: list[Touch] = []
    excluded: list[ExcludedTouch] = []
    seen = 0
    for touch in touches:
        seen += 1
        if touch.at > latest:
            excluded.append(ExcludedTouch(touch, AFTER_CONVERSION))
        elif touch.at < earliest:
            excluded.append(ExcludedTouch(touch, OUTSIDE_WINDOW))
        elif touch.flagged:
            excluded.append(ExcludedTouch(touch, FLAGGED))
        elif touch.partner_revoked:
            excluded.append(ExcludedTouch(touch, PARTNER_REVOKED))
        else:
            eligible.append(touch)
    if seen > 1:
        # Two touches with one id could sort either way round: refuse rather than guess.
        ids = {t.id for t in eligible}
        ids.update(e.touch.id for e in excluded)
        if len(ids) != seen:
            raise ValidationFailed("Touch ids must be unique.", code="duplicate_touch")
        eligible.sort(key=touch_order)
        excluded.sort(key=lambda e: touch_order(e.touch))

    n = len(eligible)
    weights = [_ONE] if n == 1 else spec.weights(eligible, at) if n else []
    credits = _credits(eligible, weights, conversion.amount)
    return Attribution(
        spec=spec,
        window_days=window_days,
        conversion=conversion,
        touches=tuple(map(WeightedTouch, eligible, weights)),
        excluded=tuple(excluded),
        credits=credits,
    )


def _credits(eligible: list[Touch], weights: list[Fraction], amount: int) -> tuple[Credit, ...]:
    # partner -> [weight, position of first credited touch, credited touch ids]
    partners: dict[str, tuple[Fraction, int, list[str]]] = {}
    for position, (touch, weight) in enumerate(zip(eligible, weights, strict=True)):
        if not weight:
            continue
        entry = partners.get(touch.partner_id)
        if entry is None:
            partners[touch.partner_id] = (weight, position, [touch.id])
        else:
            entry[2].append(touch.id)
            partners[touch.partner_id] = (entry[0] + weight, entry[1], entry[2])
    if not partners:
        return ()
    if len(partners) == 1:
        # The common case (one click, or last/first click): no split needed.
        ((partner_id, (weight, _, ids)),) = partners.items()
        return (Credit(partner_id, weight, amount, tuple(ids)),)
    # Dicts keep insertion order, which is already the order of first credited touches.
    amounts = split(
        amount,
        {p: entry[0] for p, entry in partners.items()},
        order={p: (entry[1], p) for p, entry in partners.items()},
    )
    return tuple(
        Credit(p, weight, amounts[p], tuple(ids)) for p, (weight, _, ids) in partners.items()
    )
