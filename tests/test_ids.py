"""Ids: time-sortable to the millisecond, and 80 random bits fresh for every id, so no id can be
guessed from another, not even from one made in the same millisecond."""

import itertools
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from openpartner.api.app import create_app
from openpartner.attribution.replay_sql import id_tail
from openpartner.core import ids
from openpartner.core.time import clock
from openpartner.events.models import Event
from openpartner.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_program

ID = re.compile(r"[a-z]+_[0-9A-HJKMNP-TV-Z]{26}")
T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
# Crockford base 32 to the digits int(..., 32) reads.
_DIGITS = str.maketrans(ids._ALPHABET, "0123456789abcdefghijklmnopqrstuv")


def millis(id_: str) -> str:
    return id_.split("_")[1][:10]


def random_part(id_: str) -> int:
    """The 80 bits after the millisecond, as a number."""
    value = 0
    for char in id_.split("_")[1][10:]:
        value = value * 32 + ids._ALPHABET.index(char)
    return value


def assert_unguessable(made: list[str]) -> None:
    """All distinct, and no id is another plus one (or any small step) in its random part."""
    assert len(set(made)) == len(made)
    parts = sorted(random_part(i) for i in made)
    assert min(b - a for a, b in itertools.pairwise(parts)) > 1 << 32
    # Made one after the other, yet not in increasing order: the order is the randomness'.
    assert made != sorted(made)


@pytest.fixture
def frozen() -> Iterator[None]:
    clock.freeze(T0)  # every id below is made in one millisecond
    yield
    clock.unfreeze()


def test_ids_of_one_millisecond_are_fresh_random_not_increments(frozen: None) -> None:
    made = [ids.new_id("clk") for _ in range(1_000)]
    assert all(ID.fullmatch(i) for i in made) and len({millis(i) for i in made}) == 1
    assert_unguessable(made)


def test_a_batch_of_ids_is_fresh_random_not_increments(frozen: None) -> None:
    made = ids.new_ids("evt", 1_000)
    assert all(ID.fullmatch(i) for i in made) and len({millis(i) for i in made}) == 1
    assert_unguessable(made + [ids.new_id("evt") for _ in range(10)])


def test_ids_sort_by_millisecond_and_time_never_goes_back() -> None:
    # After every id this process made so far (whatever clock earlier tests set).
    latest = int(millis(ids.new_id("prg")).translate(_DIGITS), 32)
    clock.freeze(datetime.fromtimestamp(latest / 1000 + 1, UTC))
    early = ids.new_id("prg")
    clock.advance(timedelta(milliseconds=1))
    later = ids.new_ids("prg", 3)
    assert all(early < i for i in later)
    clock.advance(-timedelta(seconds=5))  # the clock steps back: ids do not
    assert millis(ids.new_id("prg")) >= millis(later[0])


def test_bulk_prefix_takes_a_millisecond_no_other_id_shares(frozen: None) -> None:
    before = ids.new_id("att")
    prefix = ids.bulk_id_prefix("att")
    after = ids.new_id("att")
    assert before[:14] < prefix < after[:14]
    # The rows SQL completes it with: a counter, then 55 random bits per row.
    made = [prefix + id_tail(n) for n in range(1_000)]
    assert all(ID.fullmatch(i) for i in made) and made == sorted(made)
    assert len(set(made)) == 1_000
    steps = [random_part(b) - random_part(a) for a, b in itertools.pairwise(made)]
    assert all(step > 1 for step in steps)
    assert len({i[-11:] for i in made}) == 1_000  # the random characters are each row's own


def test_an_id_after_another_sorts_after_it_even_in_the_same_millisecond(frozen: None) -> None:
    versions = [ids.new_id_after("cfg", None)]
    for _ in range(20):
        versions.append(ids.new_id_after("cfg", versions[-1]))
    assert versions == sorted(versions) and len(set(versions)) == 21
    assert all(ID.fullmatch(v) for v in versions)


def test_one_batch_request_stores_events_with_unguessable_ids(
    settings: Settings, sessions: sessionmaker[Session], session: Session
) -> None:
    program = make_program(session)
    session.commit()
    roomy = settings.model_copy(update={"max_body_bytes": 1024 * 1024})
    items = [
        {
            "program_id": program.id,
            "type": "sale",
            "customer_id": f"cus_{n}",
            "amount": 100 + n,
            "external_id": f"order-{n}",
        }
        for n in range(999)
    ]
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    with TestClient(create_app(roomy, sessions), headers=admin) as client:
        response = client.post("/v1/events/batch", json={"events": items})
    assert response.status_code == 200, response.text
    answered = [r["id"] for r in response.json()["results"]]
    stored = list(session.scalars(sa.select(Event.id).order_by(Event.seq)))
    assert sorted(answered) == sorted(stored) and len(stored) == 999
    assert_unguessable(answered)  # in the order of the request
