"""attribute(): eligibility, order, per-partner sums and the money split, as tables of cases."""

from datetime import UTC, datetime, timedelta
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest

from openpartner.attribution import (
    CLOCK_SKEW_GRACE,
    DEFAULT_SPEC,
    ENGINE_VERSION,
    Conversion,
    Touch,
    attribute,
    parse_model,
)
from openpartner.core.errors import ValidationFailed
from openpartner.core.money import parse_amount

AT = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
F = Fraction


def sale(amount: int | str = 10_000, currency: str = "USD") -> Conversion:
    return Conversion(at=AT, amount=parse_amount(amount, currency), currency=currency)


def touch(
    id: str,
    partner: str,
    before: timedelta,
    *,
    seq: int = 0,
    flagged: bool = False,
    revoked: bool = False,
) -> Touch:
    return Touch(
        id=id,
        seq=seq,
        partner_id=partner,
        at=AT - before,
        flagged=flagged,
        partner_revoked=revoked,
    )


H = timedelta(hours=1)
D = timedelta(days=1)


def test_one_touch_earns_everything_under_every_model() -> None:
    for name in ("last_click", "first_click", "linear", "partner_equal", "position", "time_decay"):
        result = attribute([touch("t1", "A", 3 * D)], sale(), parse_model(name), 30)
        assert [(c.partner_id, c.weight, c.amount) for c in result.credits] == [("A", F(1), 10_000)]
        assert [w.weight for w in result.touches] == [1]


def test_no_touch_means_unattributed() -> None:
    result = attribute([], sale(), DEFAULT_SPEC, 30)
    assert not result.attributed
    assert result.credits == () and result.touches == () and result.excluded == ()


def test_only_ineligible_touches_means_unattributed_with_reasons() -> None:
    result = attribute([touch("t1", "A", H, flagged=True)], sale(), DEFAULT_SPEC, 30)
    assert not result.attributed
    assert [(e.touch.id, e.reason) for e in result.excluded] == [("t1", "flagged")]


@pytest.mark.parametrize(
    ("before", "eligible"),
    [
        (30 * D, True),  # exactly the window: inclusive
        (30 * D + timedelta(microseconds=1), False),
        (-CLOCK_SKEW_GRACE, True),  # exactly 5 minutes after the conversion: inside the grace
        (-CLOCK_SKEW_GRACE - timedelta(microseconds=1), False),
        (timedelta(0), True),  # at the conversion
    ],
)
def test_window_and_clock_skew_boundaries(before: timedelta, eligible: bool) -> None:
    result = attribute([touch("t1", "A", before)], sale(), DEFAULT_SPEC, 30)
    assert result.attributed is eligible
    if not eligible:
        reason = "outside_window" if before > timedelta(0) else "after_conversion"
        assert [e.reason for e in result.excluded] == [reason]


def test_window_of_zero_days_keeps_only_touches_at_the_conversion() -> None:
    ts = [touch("now", "A", timedelta(0)), touch("old", "B", timedelta(seconds=1))]
    result = attribute(ts, sale(), DEFAULT_SPEC, 0)
    assert result.amounts() == {"A": 10_000}
    assert [(e.touch.id, e.reason) for e in result.excluded] == [("old", "outside_window")]


@pytest.mark.parametrize(
    ("flags", "reason"),
    [
        ({"before": -H, "flagged": True, "revoked": True}, "after_conversion"),
        ({"before": 90 * D, "flagged": True, "revoked": True}, "outside_window"),
        ({"before": H, "flagged": True, "revoked": True}, "flagged"),
        ({"before": H, "flagged": False, "revoked": True}, "partner_revoked"),
    ],
)
def test_exclusion_reasons_are_checked_in_order(flags: dict[str, object], reason: str) -> None:
    t = touch(
        "t1",
        "A",
        flags["before"],  # type: ignore[arg-type]
        flagged=bool(flags["flagged"]),
        revoked=bool(flags["revoked"]),
    )
    assert [e.reason for e in attribute([t], sale(), DEFAULT_SPEC, 30).excluded] == [reason]


def test_excluded_touches_never_take_first_or_last_place() -> None:
    # The flagged click is the latest and the out-of-window one the earliest: neither counts as
    # last or first; the remaining two are first and last.
    ts = [
        touch("ancient", "X", 40 * D),
        touch("first", "A", 5 * D),
        touch("last", "B", 2 * D),
        touch("bot", "Y", H, flagged=True),
        touch("revoked", "Z", 3 * D, revoked=True),
    ]
    assert attribute(ts, sale(), DEFAULT_SPEC, 30).amounts() == {"B": 10_000}
    assert attribute(ts, sale(), parse_model("first_click"), 30).amounts() == {"A": 10_000}
    position = attribute(ts, sale(), parse_model("position"), 30)
    assert position.weights() == {"A": F(1, 2), "B": F(1, 2)}
    assert [e.touch.id for e in position.excluded] == ["ancient", "revoked", "bot"]


def test_equal_timestamps_are_ordered_by_ingest_sequence_then_id() -> None:
    ts = [
        touch("t-b", "B", H, seq=7),
        touch("t-a", "A", H, seq=9),
        touch("t-c2", "C", H, seq=8),
        touch("t-c1", "D", H, seq=8),
    ]
    result = attribute(ts, sale(), DEFAULT_SPEC, 30)
    assert [w.touch.id for w in result.touches] == ["t-b", "t-c1", "t-c2", "t-a"]
    assert result.amounts() == {"A": 10_000}
    assert attribute(ts, sale(), parse_model("first_click"), 30).amounts() == {"B": 10_000}


def test_repeated_partner_gets_the_sum_of_its_touches() -> None:
    ts = [touch("1", "A", 4 * H), touch("2", "B", 3 * H), touch("3", "A", 2 * H)]
    result = attribute(ts, sale(), parse_model("linear"), 30)
    assert [(c.partner_id, c.weight, c.amount, c.touch_ids) for c in result.credits] == [
        ("A", F(2, 3), 6_667, ("1", "3")),
        ("B", F(1, 3), 3_333, ("2",)),
    ]
    position = attribute(ts, sale(), parse_model("position"), 30)
    assert position.amounts() == {"A": 8_000, "B": 2_000}


def test_zero_weight_partner_gets_no_credit_row() -> None:
    ts = [touch("1", "A", 4 * H), touch("2", "B", 3 * H), touch("3", "C", 2 * H)]
    u_shape = parse_model("position", {"first": 50, "middle": 0, "last": 50})
    result = attribute(ts, sale(), u_shape, 30)
    assert result.amounts() == {"A": 5_000, "C": 5_000}
    assert [w.weight for w in result.touches] == [F(1, 2), 0, F(1, 2)]


@pytest.mark.parametrize(
    ("amount", "currency", "model", "expected"),
    [
        # 3-way equal split of $100.00: the leftover cent goes to the earliest touch.
        ("100.00", "USD", "linear", {"A": 3_334, "B": 3_333, "C": 3_333}),
        # A refund is split like the sale, mirrored.
        ("-100.00", "USD", "linear", {"A": -3_334, "B": -3_333, "C": -3_333}),
        ("0", "USD", "linear", {"A": 0, "B": 0, "C": 0}),
        # Yen have no minor units: 1000 yen in thirds.
        ("1000", "JPY", "linear", {"A": 334, "B": 333, "C": 333}),
        # Bahraini dinar have three: 1.000 BHD = 1000 fils.
        ("1.000", "BHD", "linear", {"A": 334, "B": 333, "C": 333}),
        # 40/20/40 of 1 unit: remainders 0.4, 0.2, 0.4 tie between first and last: first wins.
        ("0.01", "USD", "position", {"A": 1, "B": 0, "C": 0}),
        # 40/20/40 of 2 units: 0.8, 0.4, 0.8 -> one each to A and C.
        ("0.02", "USD", "position", {"A": 1, "B": 0, "C": 1}),
        ("0.003", "BHD", "position", {"A": 1, "B": 1, "C": 1}),
        # 1/7, 2/7, 4/7 of 10000 -> 1428.57, 2857.14, 5714.29: the largest remainder (A) wins.
        ("100.00", "USD", "time_decay", {"A": 1_429, "B": 2_857, "C": 5_714}),
    ],
)
def test_money_split_sums_exactly(
    amount: str, currency: str, model: str, expected: dict[str, int]
) -> None:
    ts = [touch("1", "A", 14 * D + H), touch("2", "B", 7 * D + H), touch("3", "C", H)]
    conversion = sale(amount, currency)
    result = attribute(ts, conversion, parse_model(model), 30)
    assert result.amounts() == expected
    assert sum(result.amounts().values()) == conversion.amount


def test_leftover_unit_tie_goes_to_the_partner_whose_first_touch_came_earlier() -> None:
    # Partner Z touches first, partner A second: a tie on remainders goes to Z despite its id.
    ts = [touch("1", "Z", 2 * H), touch("2", "A", H)]
    assert attribute(ts, sale("0.01"), parse_model("linear"), 30).amounts() == {"Z": 1, "A": 0}


def test_result_records_model_window_and_engine_version() -> None:
    spec = parse_model("time_decay", {"half_life_seconds": 3600})
    result = attribute([touch("1", "A", H)], sale(), spec, 45)
    assert result.spec is spec and result.spec.name == "time_decay"
    assert result.window_days == 45
    assert result.engine_version == ENGINE_VERSION
    assert result.conversion == sale()


def test_duplicate_touch_ids_are_refused() -> None:
    with pytest.raises(ValidationFailed) as info:
        attribute([touch("1", "A", H), touch("1", "B", 2 * H)], sale(), DEFAULT_SPEC, 30)
    assert info.value.code == "duplicate_touch"


@pytest.mark.parametrize("window", [-1, 36_501, True, 1.5])
def test_invalid_window_is_refused(window: object) -> None:
    with pytest.raises(ValidationFailed) as info:
        attribute([], sale(), DEFAULT_SPEC, window)  # type: ignore[arg-type]
    assert info.value.code == "invalid_window"


def test_inputs_must_be_aware_utc_and_well_formed() -> None:
    naive = datetime(2025, 3, 1, 12, 0)  # noqa: DTZ001 - the point of the test
    paris = AT.astimezone(ZoneInfo("Europe/Paris"))
    for bad in (naive, paris):
        with pytest.raises(ValidationFailed) as info:
            Touch("t", 1, "A", bad)
        assert info.value.code == "invalid_touch"
        with pytest.raises(ValidationFailed) as info:
            Conversion(bad, 100, "USD")
        assert info.value.code == "invalid_conversion"
    with pytest.raises(ValidationFailed):
        Touch("t", 1, "A", AT, kind="view")
    with pytest.raises(ValidationFailed) as info:
        Conversion(AT, 100, "XYZ")
    assert info.value.code == "invalid_currency"
    with pytest.raises(ValidationFailed) as info:
        Conversion(AT, 1.5, "USD")  # type: ignore[arg-type]
    assert info.value.code == "invalid_amount"


DOC_TOUCHES = [
    Touch("t1", 1, "A", AT - 21 * D),
    Touch("t2", 2, "B", AT - 14 * D, kind="touchpoint", role="referral"),
    Touch("t3", 3, "C", AT - 7 * D, kind="touchpoint", role="demo"),
    Touch("t4", 4, "B", AT, kind="touchpoint", role="closer"),
]


@pytest.mark.parametrize(
    ("model", "window", "touch_weights", "amounts"),
    [
        ("last_click", 30, [0, 0, 0, 1], {"B": 10_000}),
        ("first_click", 30, [1, 0, 0, 0], {"A": 10_000}),
        ("first_click", 20, [1, 0, 0], {"B": 10_000}),
        ("linear", 30, [F(1, 4)] * 4, {"A": 2_500, "B": 5_000, "C": 2_500}),
        (
            "partner_equal",
            30,
            [F(1, 3), F(1, 6), F(1, 3), F(1, 6)],
            {"A": 3_334, "B": 3_333, "C": 3_333},
        ),
        (
            "position",
            30,
            [F(2, 5), F(1, 10), F(1, 10), F(2, 5)],
            {"A": 4_000, "B": 5_000, "C": 1_000},
        ),
        (
            "time_decay",
            30,
            [F(1, 15), F(2, 15), F(4, 15), F(8, 15)],
            {"A": 667, "B": 6_667, "C": 2_666},
        ),
        (
            "role_based",
            30,
            [F(1, 16), F(5, 16), F(3, 16), F(7, 16)],
            {"A": 625, "B": 7_500, "C": 1_875},
        ),
    ],
)
def test_worked_example_in_the_docs(
    model: str, window: int, touch_weights: list[Fraction], amounts: dict[str, int]
) -> None:
    result = attribute(DOC_TOUCHES, sale("100.00"), parse_model(model), window)
    assert [w.weight for w in result.touches] == touch_weights
    assert result.amounts() == amounts


@pytest.mark.parametrize(
    ("model", "amount", "currency", "amounts"),
    [
        ("partner_equal", "-29.99", "USD", {"A": -1_000, "B": -1_000, "C": -999}),
        ("time_decay", "1000", "JPY", {"A": 67, "B": 667, "C": 266}),
        ("position", "0.001", "BHD", {"A": 0, "B": 1, "C": 0}),
    ],
)
def test_split_examples_in_the_docs(
    model: str, amount: str, currency: str, amounts: dict[str, int]
) -> None:
    result = attribute(DOC_TOUCHES, sale(amount, currency), parse_model(model), 30)
    assert result.amounts() == amounts
