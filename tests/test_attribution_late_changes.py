"""A replay loses nothing that happens while it runs: an identify committed between its reads
and its write, and events ingested meanwhile, end up derived under the new rules.

PostgreSQL only: on SQLite a replay that writes holds the database's one write lock from its
first write to its commit, so an identify or an event waits for it and nothing can interleave
(the replay's catch-up still runs there, and finds nothing).
"""

import threading
from collections.abc import Iterator
from datetime import timedelta
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from openpartner.api.app import create_app
from openpartner.attribution import replay as replay_module
from openpartner.attribution import set_replay
from openpartner.attribution.records import AttributionRow
from openpartner.attribution.replay import ReplayReport, replay
from openpartner.attribution.service import rederive_customer
from openpartner.clicks.models import Click
from openpartner.core.time import utc_now
from openpartner.db.engine import create_engine
from openpartner.db.migrate import upgrade
from openpartner.events.models import Event
from openpartner.identity.service import bind
from openpartner.programs.models import Program
from openpartner.settings import Settings
from tests.conftest import ADMIN_TOKEN, backend, create_test_database
from tests.factories import make_click, make_link, make_partner, make_program

pytestmark = pytest.mark.skipif(
    backend() != "postgresql", reason="SQLite serializes a replay with every other writer"
)


def wait_until_blocked(sessions: sessionmaker[Session], thread: threading.Thread) -> None:
    """Until a backend of this database waits for a lock, or ``thread`` has finished."""
    for _ in range(200):
        # A transaction each time: pg_stat_activity is read once per transaction.
        with sessions() as session:
            waiting = session.scalar(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
            )
        if waiting or not thread.is_alive():
            return
        thread.join(0.05)


@pytest.fixture
def committed(settings: Settings) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    """A database of its own: the replay and the requests run in real, separate transactions."""
    url, drop = create_test_database()
    engine = create_engine(url)
    upgrade(engine)
    try:
        yield (
            settings.model_copy(update={"database_url": url}),
            sessionmaker(bind=engine, expire_on_commit=False),
        )
    finally:
        engine.dispose()
        drop()  # type: ignore[operator]


def rows_of(sessions: sessionmaker[Session], event_id: str) -> list[tuple[Any, ...]]:
    with sessions() as session:
        return [
            tuple(r)
            for r in session.execute(
                sa.select(
                    AttributionRow.partner_id, AttributionRow.amount, AttributionRow.config_version
                ).where(AttributionRow.event_id == event_id)
            )
        ]


class Shop:
    """A program with two partners, a click each, and an API client on the same database."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        with sessions() as session:
            program = make_program(session, currency="USD")
            clicks = [
                make_click(
                    session,
                    link=make_link(session, partner=make_partner(session, program=program)),
                    at=utc_now() - timedelta(days=3),
                )
                for _ in range(3)
            ]
            session.commit()
            self.program_id, self.clicks = program.id, [c.id for c in clicks]
        self.client = TestClient(
            create_app(settings, sessions), headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )

    def sale(self, key: str, customer: str) -> str:
        body = {"program_id": self.program_id, "type": "sale", "customer_id": customer,
                "amount": 1000, "currency": "USD", "external_id": key}  # fmt: skip
        answer = self.client.post("/v1/events", json=body)
        assert answer.status_code == 201, answer.text
        return str(answer.json()["id"])

    def identify(self, click: int, customer: str) -> dict[str, Any]:
        body = {"program_id": self.program_id, "click_id": self.clicks[click],
                "customer_id": customer}  # fmt: skip
        answer = self.client.post("/v1/identify", json=body)
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def partner(self, click: int) -> str:
        with self.sessions() as session:
            return str(
                session.scalar(sa.select(Click.partner_id).where(Click.id == self.clicks[click]))
            )

    def replay_paused(
        self,
        monkeypatch: pytest.MonkeyPatch,
        after: str,
        model: str = "linear",
        module: ModuleType = set_replay,
    ) -> tuple[threading.Event, threading.Event, threading.Thread, list[ReplayReport]]:
        """A replay to ``model`` in a thread of its own, stopped after ``module.<after>`` until
        ``resume`` is set."""
        reached, resume = threading.Event(), threading.Event()
        step = getattr(module, after)

        def step_then_wait(*args: Any) -> Any:
            result = step(*args)
            reached.set()
            assert resume.wait(30)
            return result

        monkeypatch.setattr(module, after, step_then_wait)
        reports: list[ReplayReport] = []

        def run() -> None:
            with self.sessions() as session:
                reports.append(replay(session, self.program_id, model=model, dry_run=False))
                session.commit()

        thread = threading.Thread(target=run)
        thread.start()
        assert reached.wait(30)
        return reached, resume, thread, reports


def identify_while_stopped(
    shop: Shop, resume: threading.Event, replaying: threading.Thread, click: int, customer: str
) -> dict[str, Any]:
    """An identify while the replay is stopped: it must wait for a lock the replay holds
    (without one it would have finished); then the replay goes on, and the identify after it."""
    answers: list[dict[str, Any]] = []
    identifying = threading.Thread(target=lambda: answers.append(shop.identify(click, customer)))
    try:
        identifying.start()
        wait_until_blocked(shop.sessions, identifying)
        assert identifying.is_alive(), "the identify did not wait for the replay"
    finally:
        resume.set()
        replaying.join(30)
        identifying.join(30)
    return answers[0]


def test_an_identify_and_an_event_during_a_replay_are_not_lost(
    committed: tuple[Settings, sessionmaker[Session]], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(*committed)
    sessions = shop.sessions
    shop.identify(0, "cus_1")
    bound_before = shop.sale("before-1", "cus_1")  # attributed to the first partner
    unbound = shop.sale("before-2", "cus_2")  # no click yet

    # The replay stops after it has read and compared everything, before it writes.
    _, resume, replaying, reports = shop.replay_paused(monkeypatch, "_compare")
    try:
        # Meanwhile: the second customer is bound, and one more sale comes in.
        assert shop.identify(1, "cus_2")["attributed_events"] == 1
        during = shop.sale("during", "cus_1")
    finally:
        resume.set()
        replaying.join(30)
    assert not replaying.is_alive()
    (report,) = reports
    new_rules = report.config_version
    assert new_rules is not None
    assert report.late_events == 2  # the bound customer's sale and the sale made meanwhile
    assert rows_of(sessions, bound_before) == [(shop.partner(0), 1000, new_rules)]
    # Bound while the replay ran: without the catch-up, the sale would keep what the identify
    # derived under the old rules (or lose it, had the replay rewritten the event).
    assert rows_of(sessions, unbound) == [(shop.partner(1), 1000, new_rules)]
    # Ingested under the old rules while the replay ran, re-derived under the new ones.
    assert rows_of(sessions, during) == [(shop.partner(0), 1000, new_rules)]
    with sessions() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Event)) == 3


def test_an_identify_during_the_replays_write_waits_for_its_commit(
    committed: tuple[Settings, sessionmaker[Session]], monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = Shop(*committed)
    unbound = shop.sale("before", "cus_3")
    # Stopped after writing: the replay holds the program's derivation lock until it commits.
    _, resume, replaying, reports = shop.replay_paused(monkeypatch, "_write")
    answer = identify_while_stopped(shop, resume, replaying, 2, "cus_3")
    (report,) = reports
    assert answer["attributed_events"] == 1
    # Derived after the replay committed: under the new rules, one set.
    assert rows_of(shop.sessions, unbound) == [(shop.partner(2), 1000, report.config_version)]


def test_two_identifies_of_one_customer_at_once_leave_one_set(
    committed: tuple[Settings, sessionmaker[Session]],
) -> None:
    """Each re-derives the customer's sale: deletes its rows, inserts new ones. Without a lock
    on the event the second deletes only the rows it can see (none yet) and adds a second set."""
    shop = Shop(*committed)
    sale = shop.sale("s-1", "cus_9")  # no click yet: no rows
    with shop.sessions() as session:
        program = session.get_one(Program, shop.program_id)
        bind(session, program, customer_id="cus_9", click_id=shop.clicks[0])
        rederive_customer(session, shop.program_id, "cus_9")  # not committed yet

        def second() -> None:
            with shop.sessions() as other:
                program = other.get_one(Program, shop.program_id)
                bind(other, program, customer_id="cus_9", click_id=shop.clicks[1])
                rederive_customer(other, shop.program_id, "cus_9")
                other.commit()

        racing = threading.Thread(target=second)
        racing.start()
        wait_until_blocked(shop.sessions, racing)
        assert racing.is_alive(), "the second re-derivation did not wait for the first"
        session.commit()
    racing.join(30)
    rows = rows_of(shop.sessions, sale)
    assert len(rows) == 1, rows  # one set: the later click's partner, under last click
    assert rows[0][0] == shop.partner(1)


def test_an_identify_during_a_per_event_replay_leaves_one_set(
    committed: tuple[Settings, sessionmaker[Session]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-event path (other models) writes chunk by chunk without the derivation lock: an
    identify of a customer whose sale a chunk rewrote waits for that sale's lock."""
    shop = Shop(*committed)
    shop.identify(0, "cus_5")
    sale = shop.sale("s-5", "cus_5")
    _, resume, replaying, reports = shop.replay_paused(
        monkeypatch, "_replay_chunk", model="time_decay", module=replay_module
    )
    identify_while_stopped(shop, resume, replaying, 1, "cus_5")
    rows = rows_of(shop.sessions, sale)
    # One set, derived after the replay: both clicks, time decay under the replay's rules.
    assert sorted(r[0] for r in rows) == sorted([shop.partner(0), shop.partner(1)])
    assert sum(r[1] for r in rows) == 1000
    assert {r[2] for r in rows} == {reports[0].config_version}


def test_an_identify_between_a_chunks_reads_and_its_write_is_caught_up(
    committed: tuple[Settings, sessionmaker[Session]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The per-event path: the chunk has derived the sale from what it read (one click) when
    the customer's second click is bound and committed; the chunk then writes its older view,
    and the catch-up after the last chunk derives the sale again with both clicks."""
    shop = Shop(*committed)
    shop.identify(0, "cus_6")
    sale = shop.sale("s-6", "cus_6")
    _, resume, replaying, reports = shop.replay_paused(
        monkeypatch, "attribute", model="time_decay", module=replay_module
    )
    try:
        assert shop.identify(1, "cus_6")["attributed_events"] == 1  # not blocked: committed
    finally:
        resume.set()
        replaying.join(30)
    (report,) = reports
    assert report.late_events == 1
    rows = rows_of(shop.sessions, sale)
    assert sorted(r[0] for r in rows) == sorted([shop.partner(0), shop.partner(1)])
    assert sum(r[1] for r in rows) == 1000
    assert {r[2] for r in rows} == {report.config_version}
