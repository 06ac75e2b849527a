"""The set-based replay (``attribution/set_replay.py``) writes exactly the engine's rows.

Random histories (hypothesis): clicks bound directly or carried by a visitor (some bound to
another customer first), touchpoints on the customer or the deal, coupons, equal timestamps,
touches on the window and clock-skew boundaries, flagged clicks, revoked partners and clicks,
repeated partners, amounts of 0, negative and large, in zero-, two- and three-decimal
currencies. The oracle is the exact engine over the touches ``touches_for_events`` gathers.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from openpartner.attribution import partitions, replay_sql, set_replay, two_backends
from openpartner.attribution.engine import CLOCK_SKEW_GRACE
from openpartner.attribution.engine import attribute as engine_attribute
from openpartner.attribution.inputs import Conversion as EngineConversion
from openpartner.attribution.models import parse_model
from openpartner.attribution.records import AttributionRow
from openpartner.attribution.replay import replay
from openpartner.attribution.rows import engine_touches, rows_from
from openpartner.attribution.touches import touches_for_events
from openpartner.clicks.models import Click
from openpartner.core.ids import new_id
from openpartner.core.time import clock
from openpartner.coupons.models import PromotionCode
from openpartner.db.engine import create_engine
from openpartner.db.migrate import upgrade
from openpartner.deals.models import Deal, Touchpoint
from openpartner.events.models import Event
from openpartner.identity.models import IdentityEdge
from openpartner.partners.models import Partner
from tests.conftest import backend, create_test_database
from tests.factories import make_link, make_partner, make_program

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)
WINDOW = 3
MODELS = ["last_click", "first_click", "linear", "partner_equal"]
US = timedelta(microseconds=1)
# Offsets from the sale: the window's and the grace's boundaries on both sides, and a few
# shared values so equal timestamps are common.
OFFSETS = [
    -timedelta(days=WINDOW) - US,
    -timedelta(days=WINDOW),
    -timedelta(days=1),
    -timedelta(hours=5),
    -timedelta(seconds=1),
    timedelta(0),
    CLOCK_SKEW_GRACE,
    CLOCK_SKEW_GRACE + US,
]


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(T0)


@dataclass
class TouchSpec:
    kind: str  # direct, carried, stolen (carried but bound to someone else first), touchpoint, deal
    partner: int
    customer: int
    offset: timedelta
    bot: bool
    revoked_click: bool


touch_specs = st.builds(
    TouchSpec,
    kind=st.sampled_from(["direct", "direct", "direct", "carried", "stolen", "touchpoint", "deal"]),
    partner=st.integers(0, 3),
    customer=st.integers(0, 1),
    offset=st.sampled_from(OFFSETS),
    bot=st.integers(0, 4).map(lambda n: n == 0),
    revoked_click=st.integers(0, 9).map(lambda n: n == 0),
)
sale_specs = st.tuples(
    st.integers(0, 1),  # customer
    st.sampled_from([0, 1, 2, 3, 7, 10, 99, 100, 101, 9_999, -7, -100, 10**15]),
    st.sampled_from(["USD", "JPY", "BHD"]),
    st.sampled_from([timedelta(0), -timedelta(hours=5), timedelta(days=1)]),  # sale time
    st.booleans(),  # on the deal
    st.booleans(),  # with a coupon
)


def build(session: Session, touches: list[TouchSpec], sales: list[tuple[Any, ...]]) -> str:
    program = make_program(session, attribution_window_days=WINDOW)
    partners = [make_partner(session, program=program) for _ in range(4)]
    links = [make_link(session, partner=p) for p in partners]
    partners[3].status = "revoked"
    deal = new_id("deal")
    session.add(
        PromotionCode(
            id=new_id("cpn"), program_id=program.id, partner_id=partners[1].id, code="SAVE10"
        )
    )

    def edge(**ids: str | None) -> None:
        session.add(
            IdentityEdge(
                id=new_id("idn"), program_id=program.id, source="api", status="bound", **ids
            )
        )

    bound_visitors: set[str] = set()
    for n, t in enumerate(touches):
        at = T0 + t.offset
        customer = f"c{t.customer}"
        if t.kind in ("touchpoint", "deal"):
            session.add(
                Touchpoint(
                    id=new_id("tch"),
                    program_id=program.id,
                    partner_id=partners[t.partner].id,
                    customer_id=customer if t.kind == "touchpoint" else None,
                    deal_id=deal if t.kind == "deal" else None,
                    type="referral",
                    occurred_at=at,
                )
            )
            continue
        link = links[t.partner]
        click = Click(
            id=new_id("clk"),
            link_id=link.id,
            partner_id=link.partner_id,
            program_id=program.id,
            clicked_at=at,
            ip_hash="0" * 64,
            visitor_hash="1" * 64,
            bot=t.bot,
            duplicate=False,
            velocity=False,
            revoked=t.revoked_click,
        )
        session.add(click)
        if t.kind == "direct":
            edge(click_id=click.id, customer_id=customer)
        else:
            visitor = f"v{n % 3}-{t.customer}"
            if visitor not in bound_visitors:  # a visitor id is bound once (unique index)
                bound_visitors.add(visitor)
                edge(visitor_id=visitor, customer_id=customer)
            edge(click_id=click.id, visitor_id=visitor)
            edge(click_id=click.id, visitor_id=visitor)  # the same path twice counts once
            if t.kind == "stolen":
                edge(click_id=click.id, customer_id="someone-else")
    for n, (customer, amount, currency, at, on_deal, coupon) in enumerate(sales):
        session.add(
            Event(
                id=new_id("evt"),
                program_id=program.id,
                type="sale",
                customer_id=f"c{customer}",
                deal_id=deal if on_deal else None,
                promotion_code="save10" if coupon else None,
                amount=amount,
                currency=currency,
                occurred_at=T0 + at,
                external_id=f"order-{n}",
                request_hash="0" * 64,
            )
        )
    session.flush()
    return program.id


def engine_rows(session: Session, program_id: str, model: str) -> dict[str, list[tuple[Any, ...]]]:
    events = list(
        session.scalars(sa.select(Event).where(Event.program_id == program_id).order_by(Event.seq))
    )
    spec = parse_model(model, {})
    out = {}
    for event, records in zip(events, touches_for_events(session, events), strict=True):
        result = engine_attribute(
            engine_touches(records),
            EngineConversion(event.occurred_at, event.amount or 0, event.currency or "USD"),
            spec,
            WINDOW,
        )
        rows = rows_from(
            result, event_id=event.id, program_id=program_id, currency=event.currency,
            config_id=None,
        )  # fmt: skip
        out[event.id] = [
            (
                r["partner_id"],
                r["touch_id"],
                r["touch_kind"],
                r["weight"],
                r["amount"],
                model,
                r["credit"],
            )
            for r in rows
        ]
    return out


def stored_rows(session: Session, program_id: str) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {
        e: [] for e in session.scalars(sa.select(Event.id).where(Event.program_id == program_id))
    }
    for r in session.scalars(
        sa.select(AttributionRow)
        .where(AttributionRow.program_id == program_id)
        .order_by(AttributionRow.seq)
    ):
        out[r.event_id].append(
            (r.partner_id, r.touch_id, r.touch_kind, r.weight, r.amount, r.model, r.credit)
        )
    return out


@settings_(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    touches=st.lists(touch_specs, max_size=8),
    sales=st.lists(sale_specs, min_size=1, max_size=3),
    models=st.lists(st.sampled_from(MODELS), min_size=1, max_size=3),
)
def test_set_based_replay_writes_the_engines_rows(
    session: Session, touches: list[TouchSpec], sales: list[tuple[Any, ...]], models: list[str]
) -> None:
    program_id = build(session, touches, sales)
    for model in models:
        expected = engine_rows(session, program_id, model)
        before = stored_rows(session, program_id)
        report = replay(session, program_id, model=model, dry_run=False)
        assert stored_rows(session, program_id) == expected
        changed = sum(1 for e in expected if _credits(expected[e]) != _credits(before[e]))
        assert report.events == len(expected) and report.changed_events == changed
        totals: dict[tuple[str, str | None], list[int]] = {}
        currency = {e: c for e, c in session.execute(sa.select(Event.id, Event.currency))}
        for e in expected:
            for rows, i in ((before[e], 0), (expected[e], 1)):
                for partner, _, _, _, amount, *_ in rows:
                    totals.setdefault((partner, currency[e]), [0, 0])[i] += amount
        assert {k: [d.current, d.replayed] for k, d in report.partners.items()} == totals


def _credits(rows: list[tuple[Any, ...]]) -> dict[str, tuple[int, Fraction]]:
    """Per partner: its amount and its exact weight in the event."""
    out: dict[str, tuple[int, Fraction]] = {}
    for partner, _, _, weight, amount, *_ in rows:
        old_amount, old_weight = out.get(partner, (0, Fraction(0)))
        out[partner] = (old_amount + amount, old_weight + Fraction(weight))
    return out


def _per_partner(rows: list[tuple[Any, ...]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for partner, _, _, _, amount, *_ in rows:
        out[partner] = out.get(partner, 0) + amount
    return out


def test_unchanged_events_are_not_rewritten(session: Session) -> None:
    touches = [
        TouchSpec("direct", n % 3, 0, -timedelta(hours=n + 1), False, False) for n in range(40)
    ]
    program_id = build(session, touches, [(0, 1_000, "USD", timedelta(0), False, False)])
    replay(session, program_id, model="linear", dry_run=False)
    first = {r.id for r in session.scalars(sa.select(AttributionRow))}
    assert len(first) == 40 and all(re.fullmatch(r"att_[0-9A-HJKMNP-TV-Z]{26}", i) for i in first)
    # 80 random bits each: distinct, and spread over the whole alphabet.
    assert len({i[14:] for i in first}) == 40 and len(set("".join(i[14:] for i in first))) == 32
    # Made after every id this process made before (core.ids), and before every one after;
    # increasing in the order the rows were written, as core.ids.new_ids makes them.
    assert max(first) < new_id("att")
    written = session.scalars(sa.select(AttributionRow.id).order_by(AttributionRow.seq)).all()
    assert list(written) == sorted(written)
    again = replay(session, program_id, model="linear", dry_run=False)
    assert again.changed_events == 0
    assert {r.id for r in session.scalars(sa.select(AttributionRow))} == first


def test_a_touch_change_within_a_partner_is_rewritten(session: Session) -> None:
    # Same model, same per-partner amounts: only the touch-level comparison sees the change.
    touches = [
        TouchSpec("direct", 0, 0, -timedelta(hours=5), False, False),
        TouchSpec("direct", 0, 0, -timedelta(hours=1), False, False),
    ]
    program_id = build(session, touches, [(0, 1_000, "USD", timedelta(0), False, False)])
    replay(session, program_id, model="last_click", dry_run=False)
    (first,) = session.scalars(sa.select(AttributionRow.touch_id))
    session.execute(sa.update(Click).where(Click.id == first).values(bot=True))  # flagged later
    session.flush()
    again = replay(session, program_id, model="last_click", dry_run=False)
    assert again.changed_events == 0  # partner 0 still has all of it
    assert stored_rows(session, program_id) == engine_rows(session, program_id, "last_click")
    (second,) = session.scalars(sa.select(AttributionRow.touch_id))
    assert second != first


def test_a_deals_own_model_keeps_the_per_event_path(session: Session) -> None:
    touches = [
        TouchSpec("deal", 0, 0, -timedelta(hours=2), False, False),
        TouchSpec("deal", 1, 0, -timedelta(hours=1), False, False),
    ]
    program_id = build(session, touches, [(0, 1_001, "USD", timedelta(0), True, False)])
    deal_id = session.scalar(sa.select(Event.deal_id))
    session.add(Deal(id=deal_id, program_id=program_id, model="first_click"))
    session.flush()
    replay(session, program_id, model="linear", dry_run=False)
    (row,) = session.scalars(
        sa.select(AttributionRow).where(AttributionRow.program_id == program_id)
    )
    assert (row.model, row.weight, row.amount) == ("first_click", "1/1", 1_001)
    partner = session.get_one(Partner, row.partner_id)
    assert partner.program_id == program_id


def test_a_large_rewrite_rebuilds_the_programs_partition(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL rebuilds the program's partition; SQLite (no partitions) deletes and inserts.
    pg = partitions.is_partitioned(session)
    assert pg == (backend() == "postgresql")
    touches = [
        TouchSpec(kind, n % 4, n % 2, OFFSETS[n % len(OFFSETS)], n % 7 == 0, n % 11 == 0)
        for n, kind in enumerate(["direct", "carried", "stolen", "touchpoint", "deal"] * 4)
    ]
    sales = [(n % 2, amount, "USD", timedelta(0), n % 2 == 0, n == 1)
             for n, amount in enumerate([1_001, 999, -7, 0])]  # fmt: skip
    program_id = build(session, touches, sales)
    other = build(session, touches[:6], sales[:2])  # stays in the default partition
    for program in (other, program_id):  # too small to rebuild: rows in the default partition
        replay(session, program, model="partner_equal", dry_run=False)
    if pg:
        assert partitions.partition_of(session, program_id) is None
    others = stored_rows(session, other)
    monkeypatch.setattr(set_replay, "REBUILD_MIN_EVENTS", 1)
    seen = []
    for model in ["linear", "last_click", "partner_equal", "first_click"]:
        expected = engine_rows(session, program_id, model)
        replay(session, program_id, model=model, dry_run=False)
        assert stored_rows(session, program_id) == expected
        assert stored_rows(session, other) == others
        if pg:  # every row in the program's own partition
            seen.append(partitions.partition_of(session, program_id))
            assert session.execute(
                sa.text(f'SELECT count(*) FROM "{seen[-1]}"')  # noqa: S608
            ).scalar_one() == sum(len(rows) for rows in expected.values())
    # The same rules again: nothing to rewrite.
    assert replay(session, program_id, model="first_click", dry_run=False).changed_events == 0
    if pg:
        assert None not in seen and len(set(seen)) == 4  # a fresh partition each time
        assert partitions.partition_of(session, program_id) == seen[-1]  # kept
        assert set(partitions.partitions(session)) == {"attributions_default", seen[-1]}


def test_a_program_id_is_checked_before_it_reaches_ddl() -> None:
    with pytest.raises(ValueError, match="not a program id"):
        partitions._literal("prg_1'); DROP TABLE events; --")


def test_a_large_replay_runs_in_two_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    """On PostgreSQL two more connections derive the rows and write the new partition, each for
    half of the events. They see only what is committed: the history is committed here, in a
    database of its own. SQLite replays in one connection, with the same result."""
    url, drop = create_test_database()
    engine = create_engine(url)
    monkeypatch.setattr(two_backends, "PARALLEL_MIN_EVENTS", 1)
    monkeypatch.setattr(set_replay, "REBUILD_MIN_EVENTS", 1)
    touches = [
        TouchSpec(kind, n % 4, n % 2, OFFSETS[n % len(OFFSETS)], n % 7 == 0, n % 11 == 0)
        for n, kind in enumerate(["direct", "carried", "stolen", "touchpoint", "deal"] * 4)
    ]
    sales = [(n % 2, amount, "USD", timedelta(hours=-n), n % 3 == 0, n == 1)
             for n, amount in enumerate([1_001, 999, -7, 0, 10**15, 5])]  # fmt: skip
    try:
        upgrade(engine)
        with Session(engine) as session:
            pg = partitions.is_partitioned(session)
            program_id = build(session, touches, sales)
            session.commit()
            scratch = f"replay_scratch_{program_id.lower()}_abcdef_touches"
            if pg:  # what a replay that failed would leave behind
                session.execute(sa.text(f"CREATE UNLOGGED TABLE {scratch} (x int)"))
                session.execute(sa.text(partitions.new_table(program_id)[1]))
                session.commit()
            for model in ["linear", "last_click", "partner_equal", "first_click"]:
                expected = engine_rows(session, program_id, model)
                report = replay(session, program_id, model=model, dry_run=False)
                session.commit()
                assert stored_rows(session, program_id) == expected
                assert ("touches, then rows (2 backends)" in report.steps) == pg
                assert ("insert attributions (2 backends)" in report.steps) == pg
                assert ("build indexes (2 backends)" in report.steps) == pg
                # a change of model: known before comparing, so the helpers wrote meanwhile
                assert ("select rows under these rules" in report.steps) == pg
            if pg:  # the helpers' indexes became the partition's, one per index of the parent
                partition = partitions.partition_of(session, program_id)
                attached = session.execute(
                    sa.text(
                        """SELECT count(*) FROM pg_index i JOIN pg_inherits h
                        ON h.inhrelid = i.indexrelid WHERE i.indrelid = to_regclass(:p)"""
                    ),
                    {"p": f'"{partition}"'},
                ).scalar_one()
                assert attached == 4
            # From a time on only: the events before keep their rows, copied into the new
            # partition under the lock; those after are the engine's under the new model.
            since = T0 - timedelta(hours=2, minutes=30)
            before = stored_rows(session, program_id)
            expected = engine_rows(session, program_id, "linear")
            at = {e: t for e, t in session.execute(sa.select(Event.id, Event.occurred_at))}
            report = replay(session, program_id, model="linear", since=since, dry_run=False)
            session.commit()
            assert report.events == sum(1 for e in expected if at[e] >= since) < len(expected)
            assert stored_rows(session, program_id) == {
                e: expected[e] if at[e] >= since else before[e] for e in expected
            }
            assert ("insert attributions (2 backends)" in report.steps) == pg
            replay(session, program_id, model="first_click", dry_run=False)  # all of it again
            session.commit()
            # Same rules, one partner's clicks flagged since: only some events change, and the
            # replay's own connection writes them, reading both halves through the view.
            before = stored_rows(session, program_id)
            partner = session.scalars(
                sa.select(AttributionRow.partner_id).where(AttributionRow.touch_kind == "click")
            ).first()
            session.execute(sa.update(Click).where(Click.partner_id == partner).values(bot=True))
            session.commit()
            expected = engine_rows(session, program_id, "first_click")
            changed = [e for e in expected if _per_partner(expected[e]) != _per_partner(before[e])]
            report = replay(session, program_id, model="first_click", dry_run=False)
            session.commit()
            assert stored_rows(session, program_id) == expected
            assert 0 < report.changed_events == len(changed) < len(expected)
            assert "insert attributions (2 backends)" not in report.steps
            if pg:  # scratch tables dropped, the failed run's swept
                left = session.execute(
                    sa.text(
                        "SELECT relname FROM pg_class WHERE relname LIKE 'replay%'"
                        " OR (relname LIKE 'attributions_prg%' AND relkind = 'r'"
                        " AND NOT relispartition)"
                    )
                )
                assert list(left) == []
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def test_a_failed_large_replay_changes_nothing_and_is_cleaned_up_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A replay that fails half way (here: a statement of the rows fails) leaves the stored
    rows as they were; on PostgreSQL its committed scratch tables stay until the next large
    replay of the program, which removes them."""
    url, drop = create_test_database()
    engine = create_engine(url)
    monkeypatch.setattr(two_backends, "PARALLEL_MIN_EVENTS", 1)
    monkeypatch.setattr(set_replay, "REBUILD_MIN_EVENTS", 1)
    touches = [
        TouchSpec("direct", n % 3, 0, -timedelta(hours=n + 1), False, False) for n in range(9)
    ]
    sales = [
        (0, 1_000, "USD", timedelta(0), False, False),
        (0, 7, "JPY", timedelta(0), False, False),
    ]

    def scratch(session: Session) -> list[str]:
        if not partitions.is_partitioned(session):
            return []
        names = "SELECT relname FROM pg_class WHERE relname LIKE 'replay\\_scratch%'"
        return list(session.execute(sa.text(names)).scalars())

    try:
        upgrade(engine)
        with Session(engine) as session:
            program_id = build(session, touches, sales)
            session.commit()
            replay(session, program_id, model="linear", dry_run=False)
            session.commit()
            before = stored_rows(session, program_id)
            rows_select = replay_sql.rows_select
            monkeypatch.setattr(
                set_replay, "rows_select", lambda *a: rows_select(*a) + " WHERE no_such_column"
            )
            with pytest.raises(sa.exc.DBAPIError):  # no such column
                replay(session, program_id, model="first_click", dry_run=False)
            session.rollback()
            assert stored_rows(session, program_id) == before
            left = scratch(session)
            assert len(left) == (1 if partitions.is_partitioned(session) else 0)  # the touches
            monkeypatch.setattr(set_replay, "rows_select", rows_select)
            expected = engine_rows(session, program_id, "first_click")
            replay(session, program_id, model="first_click", dry_run=False)
            session.commit()
            assert stored_rows(session, program_id) == expected
            assert scratch(session) == []
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]
