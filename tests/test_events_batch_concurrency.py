"""Concurrent ingest of overlapping keys: each key is stored once, every other answer is a
replay of it, and nobody deadlocks. These transactions really commit (that is the point), so
the test cleans up after itself instead of relying on the usual rollback."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from openpartner.attribution.records import AttributionRow
from openpartner.core.errors import OpenPartnerError
from openpartner.events.models import Event
from openpartner.events.schemas import EventIn
from openpartner.events.service import Ingested, Pending, ingest, ingest_many
from openpartner.identity.models import IdentityEdge
from openpartner.programs.models import Program
from openpartner.settings import Settings
from tests.factories import make_click, make_link, make_partner, make_program

CLIENTS = 6  # odd-numbered ones send batches, even-numbered ones single events
ROUNDS = 3
SHARED = 200  # keys every batch client sends in a round (single-event clients send 20 of them)
OWN = 20  # keys only one client sends


@pytest.fixture
def committed(engine: Engine) -> Iterator[tuple[sessionmaker[Session], str]]:
    sessions = sessionmaker(bind=engine, expire_on_commit=False)
    with sessions() as session:
        program = make_program(session)
        link = make_link(session, partner=make_partner(session, program=program))
        click = make_click(session, link=link)
        session.add(
            IdentityEdge(
                id="idn_concurrency_test",
                program_id=program.id,
                customer_id="cus_bound",
                click_id=click.id,
                source="api",
            )
        )
        session.commit()
        program_id = program.id
    try:
        yield sessions, program_id
    finally:
        with sessions() as session:
            for table in (
                "attributions",
                "events",
                "identity_edges",
                "clicks",
                "links",
                "attribution_configs",
            ):
                session.execute(
                    sa.text(f"DELETE FROM {table} WHERE program_id = :p"),  # noqa: S608
                    {"p": program_id},
                )
            session.execute(
                sa.text("DELETE FROM partners WHERE program_id = :p"), {"p": program_id}
            )
            session.execute(sa.text("DELETE FROM programs WHERE id = :p"), {"p": program_id})
            session.commit()


def body(key: str) -> EventIn:
    customer = "cus_bound" if sum(map(ord, key)) % 2 else "cus_unbound"
    return EventIn(type="sale", customer_id=customer, amount=100 + len(key), external_id=key)


def test_concurrent_overlapping_ingest_stores_each_key_once(
    committed: tuple[sessionmaker[Session], str], settings: Settings
) -> None:
    sessions, program_id = committed
    start = threading.Barrier(CLIENTS)
    answers: list[list[tuple[str, Ingested | OpenPartnerError]]] = [[] for _ in range(CLIENTS)]
    failures: list[BaseException] = []

    def client(n: int) -> None:
        rnd = random.Random(n)
        try:
            for r in range(ROUNDS):
                keys = [f"shared-{r}-{i}" for i in range(SHARED)]
                rnd.shuffle(keys)  # every client in another order: the deadlock-prone case
                if n % 2 == 0:
                    keys = keys[:20]
                keys += [f"own-{n}-{r}-{i}" for i in range(OWN)]
                start.wait()
                if n % 2:  # half the clients send batches...
                    with sessions() as session:
                        program = session.get_one(Program, program_id)
                        items = [Pending(program, body(k), k) for k in keys]
                        outcomes = ingest_many(session, items, settings)
                        session.commit()
                else:  # ...half single events, a transaction each (as the API does)
                    outcomes = []
                    for k in keys:
                        with sessions() as session:
                            program = session.get_one(Program, program_id)
                            outcomes.append(ingest(session, program, body(k), k, settings))
                            session.commit()
                answers[n].extend(zip(keys, outcomes, strict=True))
        except BaseException as exc:  # surfaced below; a thread must not die silently
            failures.append(exc)
            start.abort()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []

    first: dict[str, str] = {}
    replays: list[tuple[str, str]] = []
    for per_client in answers:
        for key, answer in per_client:
            assert isinstance(answer, Ingested), answer
            if answer.replayed:
                replays.append((key, answer.response["id"]))
            else:
                assert key not in first, f"{key} accepted twice"
                first[key] = answer.response["id"]
    assert len(first) == ROUNDS * (SHARED + CLIENTS * OWN)
    assert len(first) + len(replays) == sum(len(a) for a in answers)
    assert all(first[key] == event_id for key, event_id in replays)
    with sessions() as session:
        rows: dict[str, Any] = dict(
            session.execute(
                sa.select(Event.external_id, Event.id).where(Event.program_id == program_id)
            ).all()
        )
        assert rows == first
        per_event = session.execute(
            sa.select(AttributionRow.event_id, sa.func.count())
            .where(AttributionRow.program_id == program_id)
            .group_by(AttributionRow.event_id)
        ).all()
    assert {n for _, n in per_event} == {1}
    bound = {k for k in first if sum(map(ord, k)) % 2}
    assert {event_id for event_id, _ in per_event} == {first[k] for k in bound}
