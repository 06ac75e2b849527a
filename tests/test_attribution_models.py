"""Each payout model's weights, as tables of touches and exact expected shares."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest

from openpartner.attribution import MODELS, ModelSpec, Touch, parse_model
from openpartner.attribution.models import DECAY_CONTEXT, MAX_HALF_LIVES, RoleBased, TimeDecay
from openpartner.core.errors import ValidationFailed

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
F = Fraction


def touches(
    *partners: str, hours_apart: int = 1, roles: list[str | None] | None = None
) -> list[Touch]:
    """Touches in order, the last one hour before ``AT``, each ``hours_apart`` before the next."""
    n = len(partners)
    roles = roles or [None] * n
    return [
        Touch(
            id=f"t{i}",
            seq=i,
            partner_id=p,
            at=AT - timedelta(hours=1 + hours_apart * (n - 1 - i)),
            kind="touchpoint" if roles[i] else "click",
            role=roles[i],
        )
        for i, p in enumerate(partners)
    ]


def weights(model: str, ts: list[Touch], params: dict[str, Any] | None = None) -> list[Fraction]:
    got = parse_model(model, params).weights(ts, AT)
    assert sum(got) == 1
    return got


@pytest.mark.parametrize(
    ("model", "partners", "expected"),
    [
        ("last_click", "AB", [0, 1]),
        ("last_click", "ABCD", [0, 0, 0, 1]),
        ("first_click", "AB", [1, 0]),
        ("first_click", "ABCD", [1, 0, 0, 0]),
        ("linear", "AB", [F(1, 2), F(1, 2)]),
        ("linear", "ABC", [F(1, 3)] * 3),
        ("linear", "ABAB", [F(1, 4)] * 4),
        ("partner_equal", "AB", [F(1, 2), F(1, 2)]),
        ("partner_equal", "AA", [F(1, 2), F(1, 2)]),
        # A appears twice: A's 1/3 is spread over its two touches.
        ("partner_equal", "ABAC", [F(1, 6), F(1, 3), F(1, 6), F(1, 3)]),
        ("position", "AB", [F(1, 2), F(1, 2)]),
        ("position", "ABC", [F(2, 5), F(1, 5), F(2, 5)]),
        ("position", "ABCD", [F(2, 5), F(1, 10), F(1, 10), F(2, 5)]),
        ("position", "ABCDEF", [F(2, 5), F(1, 20), F(1, 20), F(1, 20), F(1, 20), F(2, 5)]),
    ],
)
def test_model_weights(model: str, partners: str, expected: list[Fraction]) -> None:
    assert weights(model, touches(*partners)) == expected


@pytest.mark.parametrize(
    ("params", "partners", "expected"),
    [
        # Two touches share only first and last: f/(f+l), l/(f+l).
        ({"first": 30, "middle": 40, "last": 10}, "AB", [F(3, 4), F(1, 4)]),
        ({"first": 30, "middle": 40, "last": 10}, "ABC", [F(3, 8), F(1, 2), F(1, 8)]),
        ({"first": 0, "middle": 0, "last": 1}, "ABC", [0, 0, 1]),
        # U-shaped with nothing for the middle.
        ({"first": 50, "middle": 0, "last": 50}, "ABCD", [F(1, 2), 0, 0, F(1, 2)]),
        # Omitted parameters keep their defaults (40/20/40).
        ({"middle": 60}, "ABC", [F(40, 140), F(60, 140), F(40, 140)]),
    ],
)
def test_position_weights_are_configurable(
    params: dict[str, Any], partners: str, expected: list[Fraction]
) -> None:
    assert weights("position", touches(*partners), params) == expected


def test_time_decay_whole_half_lives_are_exact_powers_of_two() -> None:
    # Newest touch 1 h before, then 1 and 2 half-lives (7 days) older: 1, 1/2, 1/4 -> 4/7 2/7 1/7.
    ts = touches("A", "B", "C", hours_apart=7 * 24)
    assert weights("time_decay", ts) == [F(1, 7), F(2, 7), F(4, 7)]


def test_time_decay_custom_half_life() -> None:
    ts = touches("A", "B", hours_apart=1)
    assert weights("time_decay", ts, {"half_life_seconds": 3600}) == [F(1, 3), F(2, 3)]


def test_time_decay_fraction_of_a_half_life_uses_the_fixed_decimal_context() -> None:
    # Half a half-life apart: weights 2^-1/2 and 1, computed at 50 digits whatever the caller's
    # own decimal context says.
    ts = touches("A", "B", hours_apart=12)
    with localcontext() as ctx:
        ctx.prec = 5
        got = weights("time_decay", ts, {"half_life_seconds": 86400})
    ctx = DECAY_CONTEXT
    root_half = Fraction(ctx.exp(ctx.multiply(Decimal("-0.5"), ctx.ln(Decimal(2)))))
    assert got == [root_half / (1 + root_half), 1 / (1 + root_half)]
    assert abs(float(got[0]) - (2**0.5 - 1)) < 1e-15
    # 50 significant digits, no binary float involved: the ratio is a decimal of 10^-50 units.
    assert (got[0] / got[1]).denominator == 10**50


def test_time_decay_ages_count_from_the_conversion_and_clamp_inside_the_grace() -> None:
    # A touch 2 minutes after the conversion (inside the grace) counts as age 0, like one exactly
    # at the conversion: equal weights.
    ts = [
        Touch("a", 1, "A", AT, kind="click"),
        Touch("b", 2, "B", AT + timedelta(minutes=2), kind="click"),
    ]
    assert weights("time_decay", ts) == [F(1, 2), F(1, 2)]


def test_time_decay_equal_ages_share_equally() -> None:
    ts = [Touch(f"t{i}", i, p, AT - timedelta(days=3)) for i, p in enumerate("ABC")]
    assert weights("time_decay", ts) == [F(1, 3)] * 3


def test_time_decay_ancient_touch_weighs_zero_instead_of_a_huge_denominator() -> None:
    spec = TimeDecay(half_life_seconds=1)
    ts = [
        Touch("old", 1, "A", AT - timedelta(seconds=MAX_HALF_LIVES + 1)),
        Touch("older_but_in", 2, "B", AT - timedelta(seconds=MAX_HALF_LIVES - 1)),
        Touch("new", 3, "C", AT - timedelta(seconds=1)),
    ]
    got = spec.weights(ts, AT)
    assert got[0] == 0
    assert got[1] == Fraction(1, 2 ** (MAX_HALF_LIVES - 2)) / (
        1 + Fraction(1, 2 ** (MAX_HALF_LIVES - 2))
    )
    assert sum(got) == 1


@pytest.mark.parametrize(
    ("roles", "params", "expected"),
    [
        (["closer", "referral"], None, [F(35, 60), F(25, 60)]),
        (
            ["referral", "intro", "demo", "closer"],
            None,
            [F(25, 90), F(15, 90), F(15, 90), F(35, 90)],
        ),
        # No role (a click, a coupon) and unknown roles weigh like "other".
        ([None, "closer"], None, [F(5, 40), F(35, 40)]),
        (["webinar", "support"], None, [F(5, 15), F(10, 15)]),
        # A partial table is merged over the defaults; a program may add its own roles.
        (["closer", "referral"], {"weights": {"closer": 75}}, [F(75, 100), F(25, 100)]),
        (["webinar", "support"], {"weights": {"webinar": 30}}, [F(30, 40), F(10, 40)]),
        (["support", "support"], None, [F(1, 2), F(1, 2)]),
    ],
)
def test_role_based_weights(
    roles: list[str | None], params: dict[str, Any] | None, expected: list[Fraction]
) -> None:
    ts = touches(*"ABCD"[: len(roles)], roles=roles)
    assert weights("role_based", ts, params) == expected


def test_default_model_and_parameters() -> None:
    assert parse_model("last_click") == parse_model("last_click", {})
    assert parse_model("position").params_for_storage() == {"first": 40, "middle": 20, "last": 40}
    assert parse_model("time_decay").params_for_storage() == {"half_life_seconds": 604_800}
    assert parse_model("role_based").params_for_storage() == {
        "weights": {
            "closer": 35,
            "demo": 15,
            "intro": 15,
            "other": 5,
            "referral": 25,
            "support": 10,
        }
    }
    assert parse_model("linear").params_for_storage() == {}


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("last_click", None),
        ("first_click", None),
        ("linear", None),
        ("partner_equal", None),
        ("position", {"first": 3, "middle": 0, "last": 1}),
        ("time_decay", {"half_life_seconds": 86_400}),
        ("role_based", {"weights": {"webinar": 7, "closer": 1}}),
    ],
)
def test_stored_params_round_trip_through_json(model: str, params: dict[str, Any] | None) -> None:
    spec = parse_model(model, params)
    stored = json.loads(json.dumps(spec.params_for_storage()))
    assert parse_model(spec.name, stored) == spec
    assert spec.name == model


def test_every_model_is_registered_once() -> None:
    assert sorted(MODELS) == sorted(
        [
            "last_click",
            "first_click",
            "linear",
            "partner_equal",
            "position",
            "time_decay",
            "role_based",
        ]
    )
    assert all(issubclass(cls, ModelSpec) and cls.name == name for name, cls in MODELS.items())


@pytest.mark.parametrize(
    ("model", "params"),
    [
        ("position", {"first": 1.5}),
        ("position", {"first": True}),
        ("position", {"middle": -1}),
        ("position", {"first": 0, "last": 0}),
        ("position", {"firts": 40}),
        ("position", {"first": "40"}),
        ("time_decay", {"half_life_seconds": 0}),
        ("time_decay", {"half_life_seconds": "7d"}),
        ("time_decay", {"half_life_days": 7}),
        ("role_based", {"weights": {"closer": 0}}),
        ("role_based", {"weights": {"closer": 2.5}}),
        ("role_based", {"weights": {"": 3}}),
        ("role_based", {"weights": {"x" * 65: 3}}),
        ("role_based", {"weights": {1: 3}}),
        ("role_based", {"weights": [["closer", 3]]}),
        ("role_based", {"closer": 3}),
        ("last_click", {"window": 30}),
        ("linear", [1, 2]),
    ],
)
def test_invalid_params_are_refused(model: str, params: Any) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_model(model, params)
    assert info.value.code == "invalid_model_params"
    assert info.value.status == 422


def test_unknown_model_is_refused() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_model("markov")
    assert info.value.code == "invalid_model"


def test_direct_construction_is_validated_too() -> None:
    with pytest.raises(ValidationFailed):
        TimeDecay(half_life_seconds=-5)
    with pytest.raises(ValidationFailed):
        RoleBased((("closer", 3),))  # no "other": a touch without role would have no weight
    with pytest.raises(ValidationFailed):
        RoleBased((("other", 3), ("other", 4)))
