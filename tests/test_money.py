import random
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openpartner.core.errors import ValidationFailed
from openpartner.core.money import exponent, format_amount, parse_amount, split


@pytest.mark.parametrize(
    ("currency", "digits"), [("USD", 2), ("EUR", 2), ("JPY", 0), ("BHD", 3), ("KWD", 3)]
)
def test_exponents_come_from_iso_4217(currency: str, digits: int) -> None:
    assert exponent(currency) == digits


@pytest.mark.parametrize(
    ("value", "currency", "minor"),
    [
        ("12.34", "USD", 1234),
        ("1500", "JPY", 1500),
        ("1.234", "BHD", 1234),
        (995, "USD", 995),
        ("-3.10", "EUR", -310),
        ("0.5", "USD", 50),
    ],
)
def test_parse_amount_is_exact(value: str | int, currency: str, minor: int) -> None:
    assert parse_amount(value, currency) == minor


@pytest.mark.parametrize(
    ("value", "currency"),
    [("1.5", "JPY"), ("1.2345", "BHD"), ("abc", "USD"), ("NaN", "USD"), ("1.001", "USD")],
)
def test_parse_amount_refuses_inexact_or_junk(value: str, currency: str) -> None:
    with pytest.raises(ValidationFailed):
        parse_amount(value, currency)


def test_unknown_currency_is_refused() -> None:
    with pytest.raises(ValidationFailed) as info:
        exponent("XYZ")
    assert info.value.code == "invalid_currency"


def test_format_amount() -> None:
    assert format_amount(1234, "USD") == "12.34"
    assert format_amount(1500, "JPY") == "1500"
    assert format_amount(1234, "BHD") == "1.234"


def test_split_three_ways_gives_leftover_to_earliest() -> None:
    parts = split(100, {"a": 1, "b": 1, "c": 1}, order={"a": 0, "b": 1, "c": 2})
    assert parts == {"a": 34, "b": 33, "c": 33}


def test_split_leftover_goes_to_the_larger_remainder_first() -> None:
    # 10 * 0.45 = 4.5, 10 * 0.55 = 5.5 -> floors 4 and 5, one unit left; remainders tie at 0.5,
    # so the earlier part wins it.
    assert split(10, {"x": Fraction(45, 100), "y": Fraction(55, 100)}, {"x": 1, "y": 0}) == {
        "x": 4,
        "y": 6,
    }
    # 7 * 2/3 = 4.67 and 7 * 1/3 = 2.33: the larger remainder (0.67) wins regardless of order.
    assert split(7, {"p": 2, "q": 1}, {"p": 1, "q": 0}) == {"p": 5, "q": 2}


def test_split_negative_amounts_mirror_positive_ones() -> None:
    order = {"a": 0, "b": 1, "c": 2}
    assert split(-100, {"a": 1, "b": 1, "c": 1}, order) == {"a": -34, "b": -33, "c": -33}


def test_split_in_jpy_and_bhd_units() -> None:
    yen = split(parse_amount("1000", "JPY"), {"a": 1, "b": 2}, {"a": 0, "b": 1})
    assert yen == {"a": 333, "b": 667}
    dinar = split(parse_amount("1.000", "BHD"), {"a": 1, "b": 1, "c": 1}, {"a": 0, "b": 1, "c": 2})
    assert dinar == {"a": 334, "b": 333, "c": 333}


def test_split_rejects_empty_or_zero_weights() -> None:
    with pytest.raises(ValueError):
        split(10, {}, {})
    with pytest.raises(ValueError):
        split(10, {"a": 0}, {"a": 0})


weights = st.dictionaries(
    st.text(min_size=1, max_size=4),
    st.fractions(min_value=0, max_value=1000, max_denominator=1000),
    min_size=1,
    max_size=12,
).filter(lambda w: sum(w.values()) > 0)


@given(amount=st.integers(min_value=-(10**12), max_value=10**12), weights=weights)
def test_split_parts_always_sum_to_the_whole(amount: int, weights: dict[str, Fraction]) -> None:
    order = {k: k for k in weights}
    parts = split(amount, weights, order)
    assert sum(parts.values()) == amount
    total = sum(weights.values())
    for key, part in parts.items():
        assert abs(part - amount * weights[key] / total) < 1  # never more than one unit off


@given(
    amount=st.integers(min_value=-(10**9), max_value=10**9),
    weights=weights,
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_split_ignores_input_order(amount: int, weights: dict[str, Fraction], seed: int) -> None:
    order = {k: k for k in weights}
    items = list(weights.items())
    random.Random(seed).shuffle(items)
    assert split(amount, dict(items), order) == split(amount, weights, order)
