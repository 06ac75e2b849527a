"""Data-driven views of which partners drive conversions: analytics only, never payouts.

Both work on a program's journeys, converting and not: a journey is the ordered partner ids a
customer touched, whether it converted, and optionally its value. Both are exact (``Fraction``)
and deterministic: journeys may come in any order, and ties are broken by partner id.

- :func:`markov_removal` fits a first-order Markov chain (start -> partners -> conversion or
  null) and gives each partner its *removal effect*: the share of the conversion probability that
  disappears when the partner is removed (transitions into it go to null). Solved exactly over
  integers and ``Fraction``s (``chain.py``).
- :func:`shapley` gives each partner its Shapley value in the counterfactual game
  ``v(S) = sum over journey groups T of n(T) * r(T & S)``: if only the partners in S existed, the
  n(T) journeys that touched exactly the partners T would have converted at r(T & S), the value
  per journey observed among journeys that touched exactly T & S (0 if never observed; r(∅) is
  the baseline of journeys with no partner). v only depends on T & S per group, so the Shapley
  value is a sum of small per-group games, each solved exactly from the observed subsets of T:
  no sampling and no 2^n enumeration over all partners.

See ``docs/attribution.md`` for the definitions with worked examples.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise
from math import factorial
from typing import Final

from openpartner.attribution.chain import removal_probabilities
from openpartner.attribution.inputs import Touch, touch_order
from openpartner.core.errors import ValidationFailed

_START = 0
_CONVERSION = -1
_NULL = -2  # lost: never stored as an edge, since it adds 0 to every conversion probability


@dataclass(frozen=True, slots=True)
class Journey:
    partners: tuple[str, ...]
    """Partner ids in touch order; repeats allowed. Empty: a journey no partner touched."""
    converted: bool
    value: int | None = None
    """Value of the conversion in minor units; ``None`` counts a conversion as 1. Either every
    converting journey has a value or none has. Ignored when not converted."""

    def __post_init__(self) -> None:
        if not isinstance(self.partners, str):
            object.__setattr__(self, "partners", tuple(self.partners))
        if isinstance(self.partners, str) or not all(isinstance(p, str) for p in self.partners):
            raise ValidationFailed("Journey partners must be partner ids.", code="invalid_journey")
        if self.value is not None and (
            isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < 0
        ):
            raise ValidationFailed(
                "Journey value must be a non-negative integer.", code="invalid_journey"
            )

    @classmethod
    def of(cls, touches: Iterable[Touch], converted: bool, value: int | None = None) -> Journey:
        """The journey of some touches, in attribution order (time, ingest sequence, id)."""
        ordered = sorted(touches, key=touch_order)
        return cls(tuple(t.partner_id for t in ordered), converted, value)


def _worths(journeys: list[Journey]) -> list[int]:
    """Value each journey brought: 0 if lost, else its value (or 1 without values)."""
    with_value = {j.value is not None for j in journeys if j.converted}
    if len(with_value) > 1:
        raise ValidationFailed(
            "Either every converting journey has a value or none has.", code="invalid_journey"
        )
    return [(1 if j.value is None else j.value) if j.converted else 0 for j in journeys]


# --- Markov removal effect ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarkovPartner:
    partner_id: str
    removal_effect: Fraction
    """1 - P(conversion without the partner) / P(conversion), in [0, 1]."""
    share: Fraction
    """The removal effect over the sum of all removal effects (0 if that sum is 0)."""
    value: Fraction
    """``share`` of the total converted value."""


@dataclass(frozen=True, slots=True)
class MarkovResult:
    conversion_probability: Fraction
    """P(start reaches conversion) in the fitted chain."""
    total_value: int
    exact: bool
    """False when the chain was too tangled to solve exactly and was simulated instead."""
    partners: tuple[MarkovPartner, ...]
    """Sorted by partner id."""


MAX_EXACT_STATES: Final = 100
"""Largest group of partners that lead to each other in loops still solved exactly (~2 s)."""
DEFAULT_WALKS: Final = 200_000


def markov_removal(
    journeys: Iterable[Journey],
    *,
    max_exact_states: int = MAX_EXACT_STATES,
    walks: int = DEFAULT_WALKS,
    seed: int = 0,
) -> MarkovResult:
    """Removal effect of every partner in a first-order Markov chain fitted to ``journeys``.

    Transition probabilities are observed counts over the state's departures. A partner touching
    twice in a row is a self-loop, which changes no conversion probability. Exact unless more
    than ``max_exact_states`` partners lead to each other in loops (the exact solve is cubic in
    that number): then the chain is simulated ``walks`` times with ``seed``, deterministically,
    and ``exact`` is False.
    """
    journeys = list(journeys)
    total_value = sum(_worths(journeys))
    partners = sorted({p for j in journeys for p in j.partners})
    index = {p: i for i, p in enumerate(partners, start=1)}
    counts: dict[int, dict[int, int]] = {}
    departures: dict[int, int] = {}
    for journey in journeys:
        path = [_START, *(index[p] for p in journey.partners)]
        path.append(_CONVERSION if journey.converted else _NULL)
        for here, there in pairwise(path):
            departures[here] = departures.get(here, 0) + 1
            if there != _NULL:
                row = counts.setdefault(here, {})
                row[there] = row.get(there, 0) + 1
    base, without, exact = removal_probabilities(
        counts,
        departures,
        _START,
        _CONVERSION,
        max_exact_states=max_exact_states,
        walks=walks,
        seed=seed,
    )
    effects = {p: (1 - without[index[p]] / base) if base else Fraction(0) for p in partners}
    total_effect = sum(effects.values(), Fraction(0))
    result = []
    for p in partners:
        share = effects[p] / total_effect if total_effect else Fraction(0)
        result.append(MarkovPartner(p, effects[p], share, share * total_value))
    return MarkovResult(base, total_value, exact, tuple(result))


# --- Shapley ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ShapleyPartner:
    partner_id: str
    value: Fraction
    """Shapley value in units of journey value (conversions without values). May be negative:
    journeys with this partner convert worse than the same journeys without it."""
    share: Fraction
    """``value`` over the sum of all partners' values (0 if that sum is 0)."""


@dataclass(frozen=True, slots=True)
class ShapleyResult:
    baseline: Fraction
    """Value per journey among journeys with no partner (0 if there are none)."""
    total_value: int
    attributed_value: Fraction
    """Sum of the partners' values: the value of partner journeys above the baseline."""
    partners: tuple[ShapleyPartner, ...]
    """Sorted by partner id."""


def shapley(journeys: Iterable[Journey]) -> ShapleyResult:
    """Exact Shapley value of every partner in the counterfactual journey game (module doc)."""
    journeys = list(journeys)
    worths = _worths(journeys)
    groups: dict[frozenset[str], tuple[int, int]] = {}  # partner set -> (journeys, value)
    for journey, worth in zip(journeys, worths, strict=True):
        key = frozenset(journey.partners)
        count, value = groups.get(key, (0, 0))
        groups[key] = (count + 1, value + worth)
    rate = {s: Fraction(v, n) for s, (n, v) in groups.items() if v}
    values: dict[str, Fraction] = {}
    for members, (count, _) in sorted(groups.items(), key=lambda g: sorted(g[0])):
        if members:
            for partner, share in _group_shapley(members, rate).items():
                values[partner] = values.get(partner, Fraction(0)) + count * share
    total = sum(values.values(), Fraction(0))
    partners = tuple(
        ShapleyPartner(p, v, v / total if total else Fraction(0)) for p, v in sorted(values.items())
    )
    baseline = rate.get(frozenset(), Fraction(0))
    return ShapleyResult(baseline, sum(worths), total, partners)


def _group_shapley(
    members: frozenset[str], rate: dict[frozenset[str], Fraction]
) -> dict[str, Fraction]:
    """Shapley values of the game S -> rate(S) on the subsets of ``members``.

    With m players, phi_i = sum over S without i of w(|S|) * (rate(S + i) - rate(S)), where
    w(s) = s! (m - s - 1)! / m!. Rate is 0 except on observed sets, so only those are visited:
    an observed U inside the group adds rate(U) * w(|U| - 1) to each member of U and takes
    rate(U) * w(|U|) from each member outside U.
    """
    m = len(members)
    w = [Fraction(factorial(s) * factorial(m - s - 1), factorial(m)) for s in range(m)]
    phi = dict.fromkeys(members, Fraction(0))
    for subset, r in _observed_subsets(members, rate):
        size = len(subset)
        for partner in members:
            if partner in subset:
                phi[partner] += r * w[size - 1]
            else:
                phi[partner] -= r * w[size]
    return phi


def _observed_subsets(
    members: frozenset[str], rate: dict[frozenset[str], Fraction]
) -> list[tuple[frozenset[str], Fraction]]:
    # Whichever is smaller: walk the 2^m subsets of the group, or scan every observed set.
    if len(members) < 20 and 2 ** len(members) <= len(rate):
        ordered = sorted(members)
        found = []
        for mask in range(1 << len(ordered)):
            subset = frozenset(p for bit, p in enumerate(ordered) if mask >> bit & 1)
            if subset in rate:
                found.append((subset, rate[subset]))
        return found
    return [(s, r) for s, r in rate.items() if s <= members]
