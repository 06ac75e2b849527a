"""Schema fuzzing: schemathesis drives every operation of the OpenAPI document against the app.

Each operation gets the document's examples, schemathesis' coverage cases (boundaries, missing
and wrong-typed fields) and ``FUZZ_MAX_EXAMPLES`` generated requests, valid and invalid, in a
fixed order (``derandomize``) so CI sends the same requests every run. Every response must be a
non-5xx that the document declares: its status code, its content type and its body schema.
Requests are made in-process against the app on the test database (SQLite or PostgreSQL, as the
rest of the suite), after one of each resource is seeded, whose ids replace generated ones in
about half the cases. Two passes: as the admin, then, shorter, as a key bound to the seeded
program. docs/testing.md says how to run it and what it bounds.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.specs.openapi.schemas import OpenApiSchema
from sqlalchemy.orm import Session, sessionmaker

from openpartner.accounts.scopes import SCOPES
from openpartner.accounts.service import create_key
from openpartner.api.app import create_app
from openpartner.deals.schemas import DealIn
from openpartner.deals.service import create_deal
from openpartner.payouts.service import run_payouts
from openpartner.settings import Settings
from tests.conftest import ADMIN_TOKEN, backend
from tests.factories import make_click, make_link, make_partner, make_program
from tests.ledger_helpers import approve_all, only_commission, percent, sale, set_rules

# Generated requests per operation in the fuzzing phase (the examples and coverage phases add
# their own, a fixed set per operation). Chosen so the whole run stays within about two and a
# half minutes per database on the 2-core CI machine: docs/testing.md.
FUZZ_MAX_EXAMPLES = int(os.environ.get("OPENPARTNER_FUZZ_EXAMPLES", "100"))
FUZZ_SCOPED_EXAMPLES = max(FUZZ_MAX_EXAMPLES // 4, 1)
FUZZ_SEED = 14

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Tally:
    """What the fuzz sent and got back, reported at the end of the run."""

    database: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    seconds: float | None = None

    def record(self, case: Any, status: int, answer: bytes) -> None:
        self.requests += 1
        self.statuses[status] += 1
        if status < 500:
            return
        sent = {"path": case.path_parameters, "query": case.query, "body": case.body}
        self.server_errors.append(
            f"{case.method} {case.path} {sent!r:.300} -> {status}: {answer[:300]!r}"
        )

    def summary(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "requests": self.requests,
            "server_errors": len(self.server_errors),
            "statuses": dict(sorted(self.statuses.items())),
            "seconds": self.seconds or round(time.monotonic() - self.started, 1),
            "max_examples": FUZZ_MAX_EXAMPLES,
        }


class _Report:
    """A pytest plugin registered for the run: prints the tally in the terminal summary."""

    def __init__(self, tally: Tally) -> None:
        self.tally = tally

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        s = self.tally.summary()
        terminalreporter.section("schema fuzz")
        terminalreporter.write_line(
            f"{s['database']}: {s['requests']} requests, {s['server_errors']} 5xx, "
            f"{s['seconds']} s (max_examples {s['max_examples']}); statuses {s['statuses']}"
        )
        for line in self.tally.server_errors[:20]:
            terminalreporter.write_line(f"  5xx: {line}")


@pytest.fixture(scope="module")
def fuzz_tally(request: pytest.FixtureRequest) -> Iterator[Tally]:
    tally = Tally(database=backend())
    request.config.pluginmanager.register(_Report(tally))
    yield tally
    tally.seconds = round(time.monotonic() - tally.started, 1)
    out = os.environ.get("OPENPARTNER_FUZZ_SUMMARY")
    if out:
        Path(out).write_text(json.dumps(tally.summary(), indent=2) + "\n")


# The ids seeded for the operation under test, read by the path-parameter hook as it draws.
_seeded: dict[str, str] = {}


def _seed(session: Session, settings: Settings) -> dict[str, str]:
    """One of each resource, so that an id the fuzz sends can name a row that exists."""
    program = make_program(session, holding_days=0)
    set_rules(session, program, percent(1000))
    partner = make_partner(session, program=program)
    link = make_link(session, partner=partner)
    click = make_click(session, link=link)
    sale(session, settings, partner, 10_000)
    approve_all(session, program)
    run = run_payouts(session, program, "key_test", provider="manual")
    event = sale(session, settings, partner, 20_000)  # its commission stays pending
    deal = create_deal(session, program, DealIn(program_id=program.id), settings)
    key = create_key(session, kind="secret", scopes=sorted(SCOPES), program_id=program.id)
    seeded = {
        "program_id": program.id,
        "partner_id": partner.id,
        "link_id": link.id,
        "link_key": link.key,
        "click_id": click.id,
        "event_id": event.id,
        "refund_of": event.id,
        "customer_id": event.customer_id or "",
        "commission_id": only_commission(session, event).id,
        "payout_id": run.summary["payouts"][0]["payout_id"],
        "run_id": run.id,
        "deal_id": deal.id,
        "key_id": key.key.id,
        "program_key": key.token,
    }
    session.commit()
    return seeded


def _sometimes_seeded(values: Any) -> st.SearchStrategy[Any]:
    """The generated values, or the same with every field named like a seeded id set to it."""
    if not isinstance(values, dict):
        return st.just(values)
    real = {name: _seeded[name] for name in values if name in _seeded}
    if not real:
        return st.just(values)
    return st.sampled_from([values, {**values, **real}])


@pytest.fixture
def fuzz_app(
    stripe_settings: Settings, sessions: sessionmaker[Session], session: Session
) -> Iterator[FastAPI]:
    """The app on the test database, seeded, with Stripe configured (the local server: a route
    that needs Stripe works instead of answering 503); its lifespan ends with the operation."""
    _seeded.clear()
    _seeded.update(_seed(session, stripe_settings))
    yield create_app(stripe_settings, sessions)
    _seeded.clear()
    asgi.shutdown_lifespans()


def _document() -> dict[str, Any]:
    """The OpenAPI document, from an app that is never served (it has no database)."""
    settings = Settings(_env_file=None, admin_api_key=ADMIN_TOKEN, secret_key="fuzz")
    return create_app(settings, sessionmaker()).openapi()


def _flatmap_path_parameters(context: Any, path_parameters: Any) -> st.SearchStrategy[Any]:
    return _sometimes_seeded(path_parameters)


def _flatmap_query(context: Any, query: Any) -> st.SearchStrategy[Any]:
    return _sometimes_seeded(query)


def _flatmap_body(context: Any, body: Any) -> st.SearchStrategy[Any]:
    return _sometimes_seeded(body)


def _schema(max_examples: int, *, coverage: bool) -> OpenApiSchema:
    """The document loaded for schemathesis, its generated ids sometimes swapped for seeded ones."""
    loaded = schemathesis.openapi.from_dict(
        _document(),
        config=SchemathesisConfig.from_dict(
            {
                "seed": FUZZ_SEED,
                "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
                "generation": {
                    "max-examples": max_examples,
                    "deterministic": True,
                    "database": "none",
                },
                "phases": {"coverage": {"enabled": coverage}},
            }
        ),
    )
    loaded.hook("flatmap_path_parameters")(_flatmap_path_parameters)
    loaded.hook("flatmap_query")(_flatmap_query)
    loaded.hook("flatmap_body")(_flatmap_body)
    return loaded


def _check(case: Any, app: FastAPI, tally: Tally, headers: dict[str, str] | None = None) -> None:
    """Send the case, count the answer, and hold it to the document."""
    try:
        response = case.call(app=app, headers=headers)
    except Exception as exc:  # the in-process app raised: a real server would answer 500
        tally.record(case, 500, repr(exc).encode())
        raise
    tally.record(case, response.status_code, response.content)
    case.validate_response(response, checks=CHECKS, headers=headers)


# One seeded transaction per operation, shared by its examples on purpose: rows one request
# writes are there for the next, as on a real server.
_SHARED_FIXTURES = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])

as_admin = _schema(FUZZ_MAX_EXAMPLES, coverage=True)
# A second, shorter pass with a key bound to the seeded program: the scoping paths (other
# programs' ids answer 404) see the same fuzz. Coverage cases are the admin pass's job.
as_program_key = _schema(FUZZ_SCOPED_EXAMPLES, coverage=False)


@as_admin.parametrize()
@_SHARED_FIXTURES
def test_every_response_is_documented_and_never_a_server_error(
    case: Any, fuzz_app: FastAPI, fuzz_tally: Tally
) -> None:
    _check(case, fuzz_app, fuzz_tally)


@as_program_key.parametrize()
@_SHARED_FIXTURES
def test_a_program_bound_key_gets_only_documented_answers(
    case: Any, fuzz_app: FastAPI, fuzz_tally: Tally
) -> None:
    _check(case, fuzz_app, fuzz_tally, {"Authorization": f"Bearer {_seeded['program_key']}"})
