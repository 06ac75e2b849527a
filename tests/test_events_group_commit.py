"""Group commit of single events: concurrent ``POST /v1/events`` requests share a transaction
and each gets exactly the answer it would have had alone."""

import asyncio
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from openpartner.api.app import create_app
from openpartner.attribution.records import AttributionRow
from openpartner.core.time import utc_now
from openpartner.events.group_commit import GroupCommitter, Outcome, _Waiting
from openpartner.events.models import Event
from openpartner.settings import Settings
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_click, make_link, make_partner, make_program


class HeldCommitter(GroupCommitter):
    """Holds its first group until ``release`` is set, so that the requests sent meanwhile
    queue up and form the next group; records every group's size. ``fail_on`` makes any
    group holding that key fail as an unforeseen error would."""

    def __init__(self, sessions: sessionmaker[Session], settings: Settings) -> None:
        super().__init__(sessions, settings, max_groups=1)
        self.release = threading.Event()
        self.sizes: list[int] = []
        self.fail_on: str | None = None
        self.failure: Exception = RuntimeError("unforeseen")
        self.attempts = 0

    def _commit(self, group: list[_Waiting]) -> list[Outcome]:
        if not self.sizes:
            assert self.release.wait(10)
        self.sizes.append(len(group))
        return super()._commit(group)

    def _ingest(self, session: Session, group: list[_Waiting]) -> list[Outcome]:
        self.attempts += 1
        outcomes = super()._ingest(session, group)
        if self.fail_on is not None and any(w.key == self.fail_on for w in group):
            raise self.failure
        return outcomes


@pytest.fixture
def ctx(session: Session, client: TestClient) -> dict[str, str]:
    program = make_program(session, currency="USD")
    partner = make_partner(session, program=program)
    link = make_link(session, partner=partner)
    click = make_click(session, link=link, at=utc_now() - timedelta(days=2))
    session.commit()
    bound = client.post(
        "/v1/identify",
        json={"program_id": program.id, "click_id": click.id, "customer_id": "cus_1"},
    )
    assert bound.status_code == 200, bound.text
    return {"program": program.id, "partner": partner.id}


def sale(ctx: dict[str, str], key: str, amount: str = "10.00", **extra: Any) -> dict[str, Any]:
    return {
        "program_id": ctx["program"],
        "type": "sale",
        "customer_id": "cus_1",
        "amount": amount,
        "currency": "USD",
        "external_id": key,
        **extra,
    }


def send_concurrently(
    settings: Settings,
    sessions: sessionmaker[Session],
    first: dict[str, Any],
    rest: list[dict[str, Any]],
    setup: Callable[[HeldCommitter], None] = lambda _: None,
) -> tuple[HeldCommitter, list[httpx.Response]]:
    """``first`` alone in a held group, then ``rest`` sent at once while it is held."""
    app = create_app(settings, sessions)
    committer = HeldCommitter(sessions, settings)
    setup(committer)
    app.state.events_committer = committer

    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://api", headers=headers
        ) as client:
            held = asyncio.create_task(client.post("/v1/events", json=first))
            others = [asyncio.create_task(client.post("/v1/events", json=b)) for b in rest]
            while sum(len(s.queue) for s in committer._states.values()) < len(rest):
                await asyncio.sleep(0.005)
            committer.release.set()
            return [await held, *[await t for t in others]]

    return committer, asyncio.run(go())


def test_concurrent_events_share_a_group_and_get_their_own_answers(
    settings: Settings, sessions: sessionmaker[Session], ctx: dict[str, str], session: Session
) -> None:
    old = (utc_now() - timedelta(days=400)).isoformat()
    committer, answers = send_concurrently(
        settings,
        sessions,
        sale(ctx, "s-0"),
        [
            sale(ctx, "s-1"),
            sale(ctx, "s-1"),  # the same request again: a replay of the one just before
            sale(ctx, "s-1", amount="99.00"),  # the same key, another body: 409
            sale(ctx, "s-2", program_id="prg_missing"),
            {
                "program_id": ctx["program"],
                "type": "refund",
                "refund_of": "s-1",
                "amount": "4.00",
                "external_id": "r-1",
            },  # refunds a sale of this very group
            sale(ctx, "s-3", occurred_at=old),
            sale(ctx, "s-4"),
        ],
    )
    assert committer.sizes == [1, 7]
    codes = [(a.status_code, a.json().get("code")) for a in answers]
    assert codes == [
        (201, None),
        (201, None),
        (201, None),
        (409, "idempotency_conflict"),
        (404, "not_found"),
        (201, None),
        (422, "occurred_at_too_old"),
        (201, None),
    ], [a.text for a in answers]
    assert answers[2].headers["idempotent-replayed"] == "true"
    assert answers[2].json() == answers[1].json()
    assert "idempotent-replayed" not in answers[1].headers
    refund = answers[5].json()
    assert refund["type"] == "refund" and refund["amount"] == 400
    assert refund["refund_of"] == answers[1].json()["id"]
    # Every sale is attributed to the partner behind the customer's click, exactly once.
    assert answers[7].json()["attributed_to"] == [
        {"partner_id": ctx["partner"], "amount": 1000, "currency": "USD"}
    ]
    stored = session.scalars(sa.select(Event.external_id).order_by(Event.external_id)).all()
    assert stored == ["r-1", "s-0", "s-1", "s-4"]
    rows = session.execute(
        sa.select(AttributionRow.event_id, sa.func.count()).group_by(AttributionRow.event_id)
    ).all()
    # The three sales; a refund is credited through its sale, not rows of its own.
    assert len(rows) == 3 and all(n == 1 for _, n in rows)


def test_a_failing_group_falls_back_to_one_transaction_per_event(
    settings: Settings, sessions: sessionmaker[Session], ctx: dict[str, str], session: Session
) -> None:
    def poison(committer: HeldCommitter) -> None:
        committer.fail_on = "bad"

    committer, answers = send_concurrently(
        settings,
        sessions,
        sale(ctx, "first"),
        [sale(ctx, "a"), sale(ctx, "bad"), sale(ctx, "b")],
        setup=poison,
    )
    assert committer.sizes == [1, 3]
    assert [a.status_code for a in answers] == [201, 201, 500, 201]
    stored = session.scalars(sa.select(Event.external_id).order_by(Event.external_id)).all()
    assert stored == ["a", "b", "first"]


def test_a_lone_request_is_a_group_of_one_and_answered(
    settings: Settings, sessions: sessionmaker[Session], ctx: dict[str, str]
) -> None:
    committer, answers = send_concurrently(settings, sessions, sale(ctx, "only"), [])
    assert committer.sizes == [1]
    assert answers[0].status_code == 201


def test_an_unreachable_database_fails_the_group_once_without_retrying_each_event(
    settings: Settings, sessions: sessionmaker[Session], ctx: dict[str, str], session: Session
) -> None:
    # Retrying every event alone against a database that is down would make each request of
    # the group wait for as many failed attempts as there are events.
    def database_down(committer: HeldCommitter) -> None:
        committer.fail_on = "a"
        committer.failure = OperationalError("INSERT", {}, Exception("connection refused"))

    committer, answers = send_concurrently(
        settings,
        sessions,
        sale(ctx, "first"),
        [sale(ctx, "a"), sale(ctx, "b"), sale(ctx, "c")],
        setup=database_down,
    )
    assert committer.sizes == [1, 3]
    assert committer.attempts == 2  # the first group, then the failing group once
    assert [a.status_code for a in answers] == [201, 503, 503, 503]
    assert {a.json()["code"] for a in answers[1:]} == {"database_unavailable"}
    stored = session.scalars(sa.select(Event.external_id)).all()
    assert stored == ["first"]


def test_an_unknown_program_fails_only_its_own_request_in_a_group(
    settings: Settings, sessions: sessionmaker[Session], ctx: dict[str, str], session: Session
) -> None:
    missing = {**sale(ctx, "lost"), "program_id": "prg_missing"}
    committer, answers = send_concurrently(
        settings, sessions, sale(ctx, "first"), [sale(ctx, "a"), missing, sale(ctx, "b")]
    )
    assert committer.sizes == [1, 3]
    assert committer.attempts == 2  # answered within its group: no retry of each event alone
    assert [a.status_code for a in answers] == [201, 201, 404, 201]
    assert answers[2].json()["detail"] == "Program prg_missing not found."
    stored = session.scalars(sa.select(Event.external_id).order_by(Event.external_id)).all()
    assert stored == ["a", "b", "first"]
