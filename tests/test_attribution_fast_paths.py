"""The shortcuts replay takes are exact: the same rows as the engine over every touch."""

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from openpartner.attribution.configs import BEGINNING, Rules, record_config
from openpartner.attribution.engine import attribute as engine_attribute
from openpartner.attribution.inputs import Conversion as EngineConversion
from openpartner.attribution.models import parse_model
from openpartner.attribution.rows import engine_touches, rows_from
from openpartner.attribution.service import attribute
from openpartner.attribution.touches import touches_for_events
from openpartner.core import ids
from openpartner.core.time import clock
from openpartner.identity.service import bind
from tests.factories import make_click, make_link, make_partner, make_program

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(T0)


def test_batch_ids_are_new_ids_sorted_by_millisecond() -> None:
    made = [ids.new_id("att"), *ids.new_ids("att", 50), ids.new_id("att"), *ids.new_ids("att", 3)]
    assert all(re.fullmatch(r"att_[0-9A-HJKMNP-TV-Z]{26}", i) for i in made)
    # Within a millisecond the random part decides the order (tests/test_ids.py).
    assert [i[:14] for i in made] == sorted(i[:14] for i in made)
    assert len(set(made)) == len(made)


@dataclass
class Sale:
    id: str
    program_id: str
    customer_id: str
    occurred_at: datetime
    amount: int
    type: str = "sale"
    deal_id: str | None = None
    promotion_code: str | None = None
    currency: str | None = "USD"


@pytest.mark.parametrize("model", ["last_click", "linear", "first_click"])
def test_shortcuts_give_the_engines_rows(session: Session, model: str) -> None:
    program = make_program(session, attribution_window_days=30)
    partners = [make_partner(session, program=program) for _ in range(3)]
    revoked = make_partner(session, program=program)
    links = {p.id: make_link(session, partner=p) for p in [*partners, revoked]}
    revoked.status = "revoked"
    rnd = random.Random(model)
    sales = []
    for n in range(40):
        customer = f"c{n}"
        for _ in range(rnd.randrange(0, 6)):
            partner = rnd.choice([*partners, revoked])
            click = make_click(
                session,
                link=links[partner.id],
                at=T0 - timedelta(days=rnd.randrange(-3, 45), minutes=rnd.randrange(60)),
                bot=rnd.random() < 0.2,
            )
            bind(session, program, customer_id=customer, click_id=click.id)
        sales.append(Sale(f"evt_{n}", program.id, customer, T0, rnd.randrange(1, 10_000)))
    session.flush()
    record_config(
        session,
        program_id=program.id,
        model=model,
        params={},
        window_days=30,
        effective_from=BEGINNING,
        reason="test",
    )
    got = attribute(session, sales, Rules(session))
    spec = parse_model(model, {})
    for sale, rows, records in zip(sales, got, touches_for_events(session, sales), strict=True):
        result = engine_attribute(
            engine_touches(records), EngineConversion(T0, sale.amount, "USD"), spec, 30
        )
        expected = rows_from(
            result, event_id=sale.id, program_id=program.id, currency="USD", config_id=None
        )

        def key(r: dict[str, object]) -> tuple[object, ...]:
            return (r["partner_id"], r["touch_id"], r["touch_kind"], r["weight"], r["amount"],
                    r["model"], r["params"], r["engine_version"])  # fmt: skip

        assert (rows and {r["model"] for r in rows} == {model}) or not expected
        assert sorted(map(key, rows)) == sorted(map(key, expected))
