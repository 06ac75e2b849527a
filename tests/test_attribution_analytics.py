"""Markov removal effect and Shapley over journeys: worked examples and independent cross-checks."""

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from itertools import combinations, groupby, pairwise
from math import factorial

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openpartner.attribution import Touch
from openpartner.attribution.analytics import Journey, markov_removal, shapley
from openpartner.core.errors import ValidationFailed

F = Fraction
J = Journey


def repeat(partners: str, n: int, converted: int, value: int | None = None) -> list[Journey]:
    """``n`` journeys through ``partners`` of which the first ``converted`` converted."""
    return [J(tuple(partners), i < converted, value) for i in range(n)]


# --- Markov ----------------------------------------------------------------------------------


def test_markov_worked_example() -> None:
    # start -> A 1/2, B 1/2; A -> conv 1/2, B 1/2; B -> conv 2/3, null 1/3.
    # P = 1/2 * 5/6 + 1/2 * 2/3 = 3/4; without A: 1/3; without B: 1/4.
    result = markov_removal(
        [J(("A",), True), J(("B",), False), J(("A", "B"), True), J(("B",), True)]
    )
    assert result.conversion_probability == F(3, 4)
    assert result.total_value == 3
    assert [(p.partner_id, p.removal_effect, p.share, p.value) for p in result.partners] == [
        ("A", F(5, 9), F(5, 11), F(15, 11)),
        ("B", F(2, 3), F(6, 11), F(18, 11)),
    ]


def test_markov_uses_values_for_the_value_column_only() -> None:
    counted = markov_removal([J(("A",), True), J(("B",), True), J(("B",), False)])
    valued = markov_removal([J(("A",), True, 300), J(("B",), True, 100), J(("B",), False)])
    assert [p.share for p in valued.partners] == [p.share for p in counted.partners]
    assert valued.total_value == 400
    assert sum(p.value for p in valued.partners) == 400


def test_markov_without_conversions_or_journeys_is_all_zero() -> None:
    lost = markov_removal(repeat("AB", 3, 0))
    assert lost.conversion_probability == 0
    assert all(p.removal_effect == p.share == p.value == 0 for p in lost.partners)
    assert markov_removal([]) == markov_removal([]) and markov_removal([]).partners == ()


def test_markov_partner_only_in_lost_journeys_has_no_effect() -> None:
    result = markov_removal([J(("A",), True), J(("C",), False), J(("A", "C"), False)])
    assert {p.partner_id: p.removal_effect for p in result.partners}["C"] == 0


def dense_conversion_probability(journeys: list[Journey], removed: str | None) -> Fraction:
    """Independent check: solve (I - Q) x = b for all states at once by Gauss-Jordan."""
    states = ["^", *sorted({p for j in journeys for p in j.partners})]
    pos = {s: i for i, s in enumerate(states)}
    n = len(states)
    counts = [[0] * n for _ in range(n)]
    to_conv = [0] * n
    leaves = [0] * n
    for j in journeys:
        path = ["^", *j.partners]
        for a, b in pairwise(path):
            counts[pos[a]][pos[b]] += 1
            leaves[pos[a]] += 1
        leaves[pos[path[-1]]] += 1
        to_conv[pos[path[-1]]] += j.converted
    rows = []
    for i, s in enumerate(states):
        row = [F(0)] * (n + 1)
        row[i] = F(1)
        if s != removed and leaves[i]:
            for k in range(n):
                row[k] -= F(counts[i][k], leaves[i])
            row[n] = F(to_conv[i], leaves[i])
        rows.append(row)
    for col in range(n):
        pivot = next(r for r in range(col, n) if rows[r][col] != 0)
        rows[col], rows[pivot] = rows[pivot], rows[col]
        lead = rows[col][col]
        rows[col] = [v / lead for v in rows[col]]
        for r in range(n):
            if r != col and rows[r][col]:
                f = rows[r][col]
                rows[r] = [a - f * b for a, b in zip(rows[r], rows[col], strict=True)]
    return rows[0][n]


journey_lists = st.lists(
    st.builds(
        Journey,
        st.lists(st.sampled_from("ABCDE"), max_size=5).map(tuple),
        st.booleans(),
    ),
    max_size=12,
)


@given(journey_lists)
@settings(max_examples=60)
def test_markov_matches_a_dense_linear_solve(journeys: list[Journey]) -> None:
    result = markov_removal(journeys)
    base = dense_conversion_probability(journeys, None)
    assert result.conversion_probability == base
    for p in result.partners:
        without = dense_conversion_probability(journeys, p.partner_id)
        assert p.removal_effect == (1 - without / base if base else 0)
        assert 0 <= p.removal_effect <= 1


@given(journey_lists, st.integers(0, 2**32))
@settings(max_examples=40)
def test_markov_ignores_journey_order_and_consecutive_repeats(
    journeys: list[Journey], seed: int
) -> None:
    shuffled = list(journeys)
    random.Random(seed).shuffle(shuffled)
    collapsed = [J(tuple(k for k, _ in groupby(j.partners)), j.converted) for j in journeys]
    assert markov_removal(shuffled) == markov_removal(journeys) == markov_removal(collapsed)


def test_markov_is_exact_unless_loops_are_too_large_then_simulated_deterministically() -> None:
    journeys = [
        J(("A",), True),
        J(("B",), False),
        J(("A", "B"), True),
        J(("B", "A"), False),
        J(("B",), True),
    ]
    exact = markov_removal(journeys)
    assert exact.exact
    # A and B lead to each other: a loop of 2 states, over the limit of 1.
    simulated = markov_removal(journeys, max_exact_states=1, walks=20_000, seed=7)
    assert not simulated.exact
    assert simulated == markov_removal(
        list(reversed(journeys)), max_exact_states=1, walks=20_000, seed=7
    )
    assert simulated != markov_removal(journeys, max_exact_states=1, walks=20_000, seed=8)
    assert abs(simulated.conversion_probability - exact.conversion_probability) < F(2, 100)
    for approx, right in zip(simulated.partners, exact.partners, strict=True):
        assert abs(approx.removal_effect - right.removal_effect) < F(3, 100)
    assert sum(p.value for p in simulated.partners) == simulated.total_value == 3


def test_markov_with_loops_and_self_loops() -> None:
    # A -> A -> B -> A -> conv is the same chain as A -> B -> A -> conv.
    journeys = [J(("A", "A", "B", "A"), True), J(("B",), False), J(("A",), False)]
    result = markov_removal(journeys)
    assert result.exact
    assert result.conversion_probability == dense_conversion_probability(journeys, None)


# --- Shapley ---------------------------------------------------------------------------------


def test_shapley_worked_example() -> None:
    # A alone: 10 journeys, 2 convert (1/5); B alone: 10, 1 (1/10); A and B: 4, 2 (1/2).
    journeys = repeat("A", 10, 2) + repeat("B", 10, 1) + repeat("AB", 4, 2)
    result = shapley(journeys)
    assert [(p.partner_id, p.value, p.share) for p in result.partners] == [
        ("A", F(16, 5), F(16, 25)),
        ("B", F(9, 5), F(9, 25)),
    ]
    assert result.attributed_value == 5 == result.total_value
    assert result.baseline == 0


def test_shapley_partners_never_seen_together_get_their_own_conversions() -> None:
    result = shapley(repeat("A", 100, 10) + repeat("B", 100, 2))
    assert [(p.partner_id, p.value) for p in result.partners] == [("A", F(10)), ("B", F(2))]


def test_shapley_baseline_is_not_credited_to_partners() -> None:
    # Journeys with no partner convert 1 in 10: that much of the partner journeys' value is
    # credited to nobody, and a partner doing no better than it earns 0.
    journeys = repeat("", 10, 1) + repeat("A", 10, 1) + repeat("B", 10, 3)
    result = shapley(journeys)
    assert result.baseline == F(1, 10)
    assert [(p.partner_id, p.value) for p in result.partners] == [("A", F(0)), ("B", F(2))]
    assert result.attributed_value == 2 and result.total_value == 5


def test_shapley_can_be_negative_when_a_partner_lowers_conversion() -> None:
    result = shapley(repeat("A", 10, 5) + repeat("AB", 10, 1))
    values = {p.partner_id: p.value for p in result.partners}
    # In AB journeys: A's marginal is 1/2 (alone) or 1/10 - 0 (after B): mean 3/10; B's is
    # 0 - 0 (alone, never seen) or 1/10 - 1/2 (after A): mean -1/5.
    assert values == {"A": 5 + 10 * F(3, 10), "B": 10 * F(-1, 5)}


def test_shapley_with_values() -> None:
    journeys = [J(("A",), True, 1_000), J(("A",), False), J(("A", "B"), True, 500)]
    result = shapley(journeys)
    assert result.total_value == 1_500
    assert sum(p.value for p in result.partners) == 1_500


def test_shapley_large_journey_needs_no_exponential_enumeration() -> None:
    everyone = tuple(f"p{i:02}" for i in range(40))
    result = shapley([J(everyone, True), J(everyone[:1], True), J(everyone[:2], False)])
    assert result.attributed_value == 2
    assert len(result.partners) == 40


def brute_force_shapley(journeys: list[Journey]) -> dict[str, Fraction]:
    """Independent check: the game v(S) evaluated on every coalition, Shapley by definition."""
    players = sorted({p for j in journeys for p in j.partners})
    groups: dict[frozenset[str], list[Journey]] = {}
    for j in journeys:
        groups.setdefault(frozenset(j.partners), []).append(j)
    rate = {s: F(sum(j.converted for j in js), len(js)) for s, js in groups.items()}

    def v(coalition: frozenset[str]) -> Fraction:
        return sum((len(js) * rate.get(s & coalition, F(0)) for s, js in groups.items()), F(0))

    n = len(players)
    phi = {}
    for i in players:
        others = [p for p in players if p != i]
        total = F(0)
        for size in range(n):
            weight = F(factorial(size) * factorial(n - size - 1), factorial(n))
            for combo in combinations(others, size):
                s = frozenset(combo)
                total += weight * (v(s | {i}) - v(s))
        phi[i] = total
    return phi


@given(journey_lists)
@settings(max_examples=60)
def test_shapley_matches_brute_force_enumeration(journeys: list[Journey]) -> None:
    result = shapley(journeys)
    assert {p.partner_id: p.value for p in result.partners} == brute_force_shapley(journeys)
    # Efficiency: partners share exactly the partner journeys' value above the baseline.
    partner_journeys = [j for j in journeys if j.partners]
    expected = sum(j.converted for j in partner_journeys) - result.baseline * len(partner_journeys)
    assert result.attributed_value == expected


@given(journey_lists, st.integers(0, 2**32))
@settings(max_examples=40)
def test_shapley_ignores_journey_and_touch_order(journeys: list[Journey], seed: int) -> None:
    rng = random.Random(seed)
    shuffled = [J(tuple(rng.sample(j.partners, len(j.partners))), j.converted) for j in journeys]
    rng.shuffle(shuffled)
    assert shapley(shuffled) == shapley(journeys)


# --- Journeys --------------------------------------------------------------------------------


def test_journey_of_touches_is_in_attribution_order() -> None:
    at = datetime(2025, 3, 1, tzinfo=UTC)
    touches = [
        Touch("t3", 3, "C", at + timedelta(hours=1)),
        Touch("t2", 2, "B", at),
        Touch("t1", 1, "A", at),
    ]
    assert Journey.of(touches, converted=True) == J(("A", "B", "C"), True)


@pytest.mark.parametrize(
    "make",
    [
        lambda: J("AB", True),  # type: ignore[arg-type]  # a string is not a list of ids
        lambda: J(("A",), True, -5),
        lambda: J(("A",), True, True),
    ],
)
def test_invalid_journeys_are_refused(make: Callable[[], Journey]) -> None:
    with pytest.raises(ValidationFailed) as info:
        make()
    assert info.value.code == "invalid_journey"


def test_values_are_all_or_nothing() -> None:
    mixed = [J(("A",), True, 100), J(("B",), True)]
    for analyse in (markov_removal, shapley):
        with pytest.raises(ValidationFailed) as info:
            analyse(mixed)
        assert info.value.code == "invalid_journey"
