"""The pure commission rules, as tables of cases and properties."""

from __future__ import annotations

from datetime import UTC, datetime
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openpartner.commissions.rules import (
    Rule,
    Share,
    add_months,
    after_refunds,
    duplicate_rules,
    earnings,
    eligible,
    percent_of,
    rule_problems,
    select_rule,
)

T0 = datetime(2025, 1, 31, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "bps", "expected"),
    [
        (10_000, 1_000, 1_000),  # 10 % of 100.00
        (999, 1_000, 100),  # 99.9 -> 100 (remainder .9 beats .1)
        (994, 1_000, 99),  # 99.4 -> 99
        (995, 1_000, 100),  # 99.5 vs 895.5: a tie goes to the commission (first in order)
        (1, 5_000, 1),  # half a cent: tie, to the commission
        (3, 3_333, 1),  # 0.9999 -> 1
        (12_345, 0, 0),
        (12_345, 10_000, 12_345),
        (0, 2_500, 0),
        (1_000_000_007, 1, 100_000),  # 100000.0007
    ],
)
def test_percent_of_rounds_once_by_largest_remainder(amount: int, bps: int, expected: int) -> None:
    assert percent_of(amount, bps) == expected


@pytest.mark.parametrize(
    ("at", "months", "expected"),
    [
        (T0, 1, datetime(2025, 2, 28, 12, tzinfo=UTC)),  # clamped to February's last day
        (datetime(2024, 1, 31, tzinfo=UTC), 1, datetime(2024, 2, 29, tzinfo=UTC)),  # leap year
        (T0, 12, datetime(2026, 1, 31, 12, tzinfo=UTC)),
        (datetime(2025, 11, 15, tzinfo=UTC), 2, datetime(2026, 1, 15, tzinfo=UTC)),
        (datetime(2025, 3, 31, tzinfo=UTC), 1, datetime(2025, 4, 30, tzinfo=UTC)),
    ],
)
def test_add_months_is_calendar_months(at: datetime, months: int, expected: datetime) -> None:
    assert add_months(at, months) == expected


FIRST = Rule("sale", "percent", rate_bps=1000, recurrence="first")
FOREVER = Rule("sale", "percent", rate_bps=1000)
TWELVE = Rule("sale", "percent", rate_bps=1000, max_months=12)


@pytest.mark.parametrize(
    ("rule", "occurred_at", "first_at", "expected"),
    [
        (FIRST, T0, None, True),  # the first sale
        (FIRST, datetime(2025, 3, 1, tzinfo=UTC), T0, False),  # a later sale
        (FOREVER, datetime(2035, 1, 1, tzinfo=UTC), T0, True),
        (TWELVE, datetime(2026, 1, 31, 11, tzinfo=UTC), T0, True),  # last hour of month 12
        (TWELVE, datetime(2026, 1, 31, 12, tzinfo=UTC), T0, False),  # 12 months exactly: over
        (TWELVE, T0, T0, True),  # same instant as the first: it is the first
    ],
)
def test_first_and_recurring_with_a_maximum_duration(
    rule: Rule, occurred_at: datetime, first_at: datetime | None, expected: bool
) -> None:
    assert eligible(rule, occurred_at, first_at) is expected


DEFAULT = Rule("sale", "percent", rate_bps=1000)
OVERRIDE = Rule("sale", "percent", rate_bps=2500, partner_id="ptn_b")
LEAD = Rule("lead", "flat", amount=500, currency="USD")


@pytest.mark.parametrize(
    ("event_type", "partner", "expected"),
    [
        ("sale", "ptn_a", DEFAULT),
        ("sale", "ptn_b", OVERRIDE),
        ("lead", "ptn_b", LEAD),  # the override is for sales only
        ("signup", "ptn_a", None),
    ],
)
def test_a_partner_override_wins_over_the_default(
    event_type: str, partner: str, expected: Rule | None
) -> None:
    assert select_rule([OVERRIDE, DEFAULT, LEAD], event_type, partner) == expected


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        (Rule("sale", "percent"), "rate_bps"),
        (Rule("sale", "percent", rate_bps=10_001), "rate_bps"),
        (Rule("sale", "percent", rate_bps=10, amount=5, currency="USD"), "no amount"),
        (Rule("lead", "percent", rate_bps=10), "lead rewards are flat"),
        (Rule("signup", "percent", rate_bps=10), "signup rewards are flat"),
        (Rule("sale", "flat", amount=500), "currency"),
        (Rule("sale", "flat", amount=-1, currency="USD"), "non-negative"),
        (Rule("sale", "flat", amount=1, currency="USD", rate_bps=5), "no rate_bps"),
        (Rule("sale", "percent", rate_bps=5, recurrence="first", max_months=3), "recurring"),
        (Rule("sale", "percent", rate_bps=5, max_months=0), "at least 1"),
    ],
)
def test_invalid_rules_are_explained(rule: Rule, problem: str) -> None:
    assert any(problem in p for p in rule_problems(rule))


def test_valid_rules_have_no_problems_and_duplicates_are_found() -> None:
    rules = [DEFAULT, OVERRIDE, LEAD, Rule("sale", "flat", amount=0, currency="JPY")]
    assert all(rule_problems(r) == [] for r in rules)
    assert duplicate_rules(rules) == [("sale", None)]


def _shares(**weights: tuple[int, Fraction]) -> dict[str, Share]:
    return {f"ptn_{k}": Share(amount, weight) for k, (amount, weight) in weights.items()}


HALF, THIRD, TWO_THIRDS = Fraction(1, 2), Fraction(1, 3), Fraction(2, 3)
FLAT_EUR = Rule("sale", "flat", amount=1000, currency="EUR")
FLAT_900 = Rule("sale", "flat", amount=900, currency="EUR")
FLAT_B = Rule("sale", "flat", amount=100, currency="EUR", partner_id="ptn_b")


@pytest.mark.parametrize(
    ("rules", "shares", "expected"),
    [
        # percent of each partner's attributed share, in the event's currency
        ([DEFAULT], _shares(a=(5_000, HALF), b=(5_000, HALF)), {"a": 500, "b": 500}),
        (
            [DEFAULT, OVERRIDE],
            _shares(a=(3_334, THIRD), b=(6_666, TWO_THIRDS)),
            {"a": 333, "b": 1_667},
        ),
        # a flat reward is shared by weight and sums exactly
        (
            [FLAT_EUR],
            _shares(a=(1, THIRD), b=(1, THIRD), c=(1, THIRD)),
            {"a": 334, "b": 333, "c": 333},
        ),
        # an override partner's weight is not paid by the default flat reward
        ([FLAT_900, FLAT_B], _shares(a=(1, TWO_THIRDS), b=(1, THIRD)), {"a": 600, "b": 33}),
        ([], _shares(a=(5_000, Fraction(1))), {}),
        ([Rule("sale", "percent", rate_bps=1)], _shares(a=(49, Fraction(1))), {}),  # rounds to 0
    ],
)
def test_earnings_per_partner(
    rules: list[Rule], shares: dict[str, Share], expected: dict[str, int]
) -> None:
    result = earnings(
        rules, event_type="sale", currency="USD", occurred_at=T0, first_at=None, shares=shares
    )
    assert {p.removeprefix("ptn_"): e.amount for p, e in result.items()} == expected


def test_flat_rewards_keep_their_own_currency_and_percent_the_events() -> None:
    rules = [Rule("sale", "flat", amount=700, currency="JPY", partner_id="ptn_a"), DEFAULT]
    shares = _shares(a=(5_000, Fraction(1, 2)), b=(5_000, Fraction(1, 2)))
    result = earnings(
        rules, event_type="sale", currency="EUR", occurred_at=T0, first_at=None, shares=shares
    )
    assert (result["ptn_a"].amount, result["ptn_a"].currency) == (350, "JPY")
    assert (result["ptn_b"].amount, result["ptn_b"].currency) == (500, "EUR")


@pytest.mark.parametrize(
    ("gross", "sale", "refunded", "kept"),
    [
        (1_000, 10_000, 0, 1_000),
        (1_000, 10_000, 10_000, 0),
        (1_000, 10_000, 2_500, 750),
        (333, 10_000, 5_000, 167),  # 166.5: the tie goes to what is kept
        (1, 3, 1, 1),  # 0.666 kept
        (1, 3, 2, 0),  # 0.333 kept
    ],
)
def test_after_refunds_is_proportional_and_exact(
    gross: int, sale: int, refunded: int, kept: int
) -> None:
    assert after_refunds(gross, sale, refunded) == kept


@given(
    gross=st.integers(0, 10**9),
    sale=st.integers(1, 10**9),
    cuts=st.lists(st.integers(1, 10**6), min_size=1, max_size=6),
)
def test_partial_refunds_only_ever_reduce_and_a_full_refund_leaves_nothing(
    gross: int, sale: int, cuts: list[int]
) -> None:
    refunded, previous = 0, gross
    for cut in cuts:
        refunded = min(sale, refunded + cut)
        kept = after_refunds(gross, sale, refunded)
        assert 0 <= kept <= previous
        previous = kept
    assert after_refunds(gross, sale, sale) == 0


@given(
    amount=st.integers(0, 10**9),
    parts=st.lists(st.integers(1, 1000), min_size=1, max_size=8),
)
def test_a_flat_reward_shared_by_weight_always_sums_to_the_reward(
    amount: int, parts: list[int]
) -> None:
    total = sum(parts)
    shares = {f"ptn_{i:02}": Share(1, Fraction(p, total)) for i, p in enumerate(parts)}
    rule = Rule("sale", "flat", amount=amount, currency="USD")
    result = earnings(
        [rule], event_type="sale", currency="USD", occurred_at=T0, first_at=None, shares=shares
    )
    assert sum(e.amount for e in result.values()) == amount
    reordered = dict(reversed(list(shares.items())))
    again = earnings(
        [rule], event_type="sale", currency="USD", occurred_at=T0, first_at=None, shares=reordered
    )
    assert again == result  # the input order never changes a result
