"""Many requests at once on every write route, through a real `openpartner api` process, on both
databases: every request is answered, `/health` answers throughout, and the rows written are
exactly the ones acknowledged.

Before the database slots (`api/concurrency.py`), 20 concurrent clicks left the API answering
nothing on PostgreSQL, `/health` included, and 11 concurrent writes stalled it for 10 s on SQLite.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from openpartner.accounts.models import ApiKey
from openpartner.api.app import create_app
from openpartner.api.concurrency import DatabaseSlots
from openpartner.clicks.models import Click
from openpartner.deals.models import Deal, Touchpoint
from openpartner.events.models import Event
from openpartner.identity.models import IdentityEdge
from openpartner.partners.models import Partner
from openpartner.settings import Settings
from tests.factories import make_key, make_link, make_partner, make_program
from tests.router_support import SECRET, RouterDatabase, free_port, router_database, wait_until

pytestmark = pytest.mark.slow

BURST = 64
ANSWER_WITHIN = 60.0  # seconds: generous, the point is that nothing hangs
HEALTH_WITHIN = 5.0
ORIGIN = "https://shop.acme.example"
ADMIN = "op_test_admin_" + secrets.token_hex(8)


@dataclass
class World:
    program_id: str
    partner_id: str
    link_key: str
    publishable: str
    secret: str
    """A program-bound secret key with events:write."""


@dataclass
class ApiProcess:
    process: subprocess.Popen[bytes]
    base: str
    log: Path

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=15)


@pytest.fixture(scope="module")
def db() -> Iterator[RouterDatabase]:
    yield from router_database()


@pytest.fixture(scope="module")
def world(db: RouterDatabase) -> World:
    with Session(db.engine) as session, session.begin():
        program = make_program(session, allowed_origins=[ORIGIN])
        partner = make_partner(session, program=program)
        link = make_link(session, partner=partner, key="burst-via")
        return World(
            program_id=program.id,
            partner_id=partner.id,
            link_key=link.key,
            publishable=make_key(
                session, scopes=["visitors:write"], program_id=program.id, kind="publishable"
            ),
            secret=make_key(session, scopes=["events:write"], program_id=program.id),
        )


@pytest.fixture(scope="module")
def api(db: RouterDatabase, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiProcess]:
    """`openpartner api` as deployed (uvicorn, default pool and limits), on a free port."""
    data_dir = tmp_path_factory.mktemp("api")
    port, log = free_port(), data_dir / "api.log"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("API_", "DATABASE_"))},
        "DATABASE_URL": db.url,
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": SECRET,
        "ADMIN_API_KEY": ADMIN,
        "LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "openpartner", "api", "--port", str(port)]
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = ApiProcess(process, f"http://127.0.0.1:{port}", log)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"api exited: {log.read_text()}")
        try:
            return httpx.get(server.base + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_until(up, timeout=60, what="api start")
        yield server
    finally:
        server.kill()


# --- the burst ------------------------------------------------------------------------------


@dataclass
class Call:
    path: str
    token: str
    body: dict[str, Any] | None
    """None: a GET."""
    origin: str | None = None


@dataclass
class Burst:
    answers: list[httpx.Response]
    health: list[float]
    """Seconds each `/health` poll took while the burst ran."""

    def acknowledged(self) -> list[httpx.Response]:
        return [a for a in self.answers if a.is_success]


async def _burst(base: str, calls: list[Call]) -> Burst:
    limits = httpx.Limits(max_connections=len(calls) + 1)
    async with (
        httpx.AsyncClient(base_url=base, timeout=ANSWER_WITHIN, limits=limits) as client,
        httpx.AsyncClient(base_url=base, timeout=HEALTH_WITHIN) as prober,
    ):
        health: list[float] = []
        done = asyncio.Event()

        async def poll() -> None:
            while True:
                started = time.monotonic()
                response = await prober.get("/health")
                assert response.status_code == 200, response.text
                health.append(time.monotonic() - started)
                if done.is_set():
                    return
                await asyncio.sleep(0.05)

        def send(call: Call) -> Any:
            headers = {"Authorization": f"Bearer {call.token}"}
            if call.origin:
                headers["Origin"] = call.origin
            if call.body is None:
                return client.get(call.path, headers=headers)
            return client.post(call.path, json=call.body, headers=headers)

        async def send_all() -> list[httpx.Response]:
            try:
                return list(await asyncio.gather(*(send(call) for call in calls)))
            finally:
                done.set()

        # A /health poll that fails or times out fails the test at once, the burst with it.
        async with asyncio.timeout(ANSWER_WITHIN), asyncio.TaskGroup() as group:
            group.create_task(poll())  # polls once more after the burst
            answers = group.create_task(send_all())
    return Burst(answers.result(), health)


def burst(api: ApiProcess, calls: list[Call]) -> Burst:
    return asyncio.run(_burst(api.base, calls))


def count(db: RouterDatabase, table: type[Any]) -> int:
    with db.engine.connect() as conn:
        return int(conn.scalar(sa.select(sa.func.count()).select_from(table)) or 0)


def check_burst(
    db: RouterDatabase,
    api: ApiProcess,
    table: type[Any],
    make_call: Callable[[int], Call],
    *,
    rows_each: int = 1,
) -> Burst:
    """``BURST`` calls at once: each answered (2xx, or 503 overloaded with Retry-After), /health
    answering throughout, and ``table`` grown by exactly ``rows_each`` per acknowledged call."""
    before = count(db, table)
    result = burst(api, [make_call(i) for i in range(BURST)])
    for answer in result.answers:
        if not answer.is_success:
            assert answer.status_code == 503, answer.text
            assert answer.json()["code"] == "overloaded"
            assert answer.headers["retry-after"]
    assert len(result.health) >= 1 and max(result.health) < HEALTH_WITHIN
    assert count(db, table) - before == rows_each * len(result.acknowledged())
    # Far below API_MAX_CONCURRENT_REQUESTS (256): every call is taken, none refused.
    assert len(result.acknowledged()) == BURST, [a.text for a in result.answers][:3]
    return result


# --- one test per write route ---------------------------------------------------------------


def test_clicks_with_a_publishable_key_from_the_page_all_land(
    db: RouterDatabase, api: ApiProcess, world: World
) -> None:
    result = check_burst(
        db,
        api,
        Click,
        lambda i: Call("/v1/clicks", world.publishable, {"link_key": world.link_key}, ORIGIN),
    )
    stored = {row for (row,) in _ids(db, Click.id)}
    assert {a.json()["click_id"] for a in result.acknowledged()} <= stored


def test_clicks_with_a_secret_key_from_the_server_all_land(
    db: RouterDatabase, api: ApiProcess, world: World
) -> None:
    check_burst(
        db,
        api,
        Click,
        lambda i: Call(
            "/v1/clicks", world.secret, {"link_key": world.link_key, "ip": f"203.0.113.{i}"}
        ),
    )


def test_identify_calls_from_the_page_all_bind(
    db: RouterDatabase, api: ApiProcess, world: World
) -> None:
    result = check_burst(
        db,
        api,
        IdentityEdge,
        lambda i: Call(
            "/v1/identify",
            world.publishable,
            {"customer_id": f"cus_burst_{i}", "click_id": f"clk_burst{i:04d}"},
            ORIGIN,
        ),
    )
    assert all(a.json()["new_binding"] for a in result.acknowledged())


def test_single_events_all_land(db: RouterDatabase, api: ApiProcess, world: World) -> None:
    check_burst(
        db,
        api,
        Event,
        lambda i: Call(
            "/v1/events",
            world.secret,
            {"type": "lead", "customer_id": f"cus_ev_{i}", "external_id": f"lead-{i}"},
        ),
    )


def test_batches_all_land(db: RouterDatabase, api: ApiProcess, world: World) -> None:
    def batch(i: int) -> Call:
        events = [
            {"type": "signup", "customer_id": f"cus_b_{i}", "external_id": f"signup-{i}-{n}"}
            for n in range(3)
        ]
        return Call("/v1/events/batch", world.secret, {"events": events})

    result = check_burst(db, api, Event, batch, rows_each=3)
    assert {r["status"] for a in result.acknowledged() for r in a.json()["results"]} == {"accepted"}


def test_deals_all_land(db: RouterDatabase, api: ApiProcess, world: World) -> None:
    check_burst(
        db,
        api,
        Deal,
        lambda i: Call(
            "/v1/deals", ADMIN, {"program_id": world.program_id, "external_id": f"deal-{i}"}
        ),
    )


def test_touchpoints_all_land(db: RouterDatabase, api: ApiProcess, world: World) -> None:
    check_burst(
        db,
        api,
        Touchpoint,
        lambda i: Call(
            "/v1/touchpoints",
            ADMIN,
            {"partner_id": world.partner_id, "type": "referral", "customer_id": f"cus_tp_{i}"},
        ),
    )


def test_api_keys_all_land(db: RouterDatabase, api: ApiProcess) -> None:
    check_burst(
        db,
        api,
        ApiKey,
        lambda i: Call("/v1/api-keys", ADMIN, {"name": f"burst {i}", "scopes": ["links:read"]}),
    )


def test_partners_all_land(db: RouterDatabase, api: ApiProcess, world: World) -> None:
    check_burst(
        db,
        api,
        Partner,
        lambda i: Call(
            "/v1/partners",
            ADMIN,
            {
                "program_id": world.program_id,
                "name": f"Partner {i}",
                "email": f"p{i}@burst.example",
            },
        ),
    )


def test_reads_that_open_the_session_in_a_dependency_all_answer(
    db: RouterDatabase, api: ApiProcess, world: World
) -> None:
    # The program is read in a sync dependency, the figures in the handler: two trips to the
    # thread pool with the transaction (on SQLite, the write lock) open in between.
    path = f"/v1/programs/{world.program_id}/analytics/overview"
    result = check_burst(db, api, Click, lambda i: Call(path, ADMIN, None), rows_each=0)
    assert {a.status_code for a in result.answers} == {200}


def _ids(db: RouterDatabase, column: Any) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.select(column)).all())


# --- beyond the admission bound --------------------------------------------------------------


def test_beyond_the_admission_bound_requests_are_refused_at_once_and_write_nothing(
    db: RouterDatabase, world: World, tmp_path: Path
) -> None:
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path,
        database_url=db.url,
        secret_key=SECRET,
        api_max_concurrent_requests=4,
    )
    app = create_app(settings, sessionmaker(bind=db.engine, expire_on_commit=False))
    headers = {"Authorization": f"Bearer {world.publishable}", "Origin": ORIGIN}
    before = count(db, Click)

    async def run() -> tuple[list[httpx.Response], httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            answers = await asyncio.gather(
                *(
                    client.post("/v1/clicks", json={"link_key": world.link_key}, headers=headers)
                    for _ in range(BURST)
                )
            )
            return list(answers), await client.get("/health")

    answers, health = asyncio.run(run())
    refused = [a for a in answers if a.status_code == 503]
    taken = [a for a in answers if a.status_code == 201]
    assert len(refused) + len(taken) == BURST
    assert 4 <= len(taken) < BURST
    assert refused[0].headers["content-type"] == "application/problem+json"
    assert refused[0].headers["retry-after"] == "1"
    assert refused[0].json()["code"] == "overloaded"
    assert count(db, Click) - before == len(taken)
    assert health.status_code == 200


def test_a_request_holding_a_slot_runs_its_later_steps_in_it() -> None:
    # The key lookup after the session dependency: waiting for a second slot could wait for ever
    # once every slot is held by a request doing the same.
    slots = DatabaseSlots(1)

    async def run() -> list[str]:
        order: list[str] = []
        request: dict[str, Any] = {}

        async def other() -> None:
            async with slots.hold({}):
                order.append("other")

        async with slots.hold(request):
            waiting = asyncio.create_task(other())
            async with asyncio.timeout(5), slots.hold(request):
                order.append("request again")
            await asyncio.sleep(0.01)
            order.append("request done")
        await waiting
        return order

    assert asyncio.run(run()) == ["request again", "request done", "other"]
