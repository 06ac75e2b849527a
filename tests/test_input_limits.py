"""Input that cannot hurt (issue 14): each test is named for the attack it stops. Every refusal is
a 4xx problem with a code naming the rule, on SQLite and PostgreSQL alike, and writes nothing."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from openpartner.api.app import create_app
from openpartner.core.money import MAX_AMOUNT
from openpartner.core.time import utc_now
from openpartner.events.models import Event
from openpartner.integrations.stripe.models import StripeEvent
from openpartner.ledger.service import add_to_balances
from openpartner.settings import Settings
from openpartner.worker.queue import run_until_idle
from tests.conftest import ADMIN_TOKEN, create_test_database
from tests.factories import make_partner, make_program
from tests.ledger_helpers import (
    approve_all,
    assert_books_balance,
    percent,
    scratch_database,
    set_rules,
)
from tests.ledger_helpers import sale as ledger_sale
from tests.test_stripe_webhook import deliver, invoice, stripe_event

STRIPE_SECRET = "whsec_input_limits"
EXPONENT = "1e999997"  # a million-digit integer once converted: 21.5 s of the GIL per item


@pytest.fixture
def program_id(session: Session) -> str:
    program = make_program(session, currency="USD")
    session.commit()
    return program.id


def sale(program_id: str, key: str, **extra: Any) -> dict[str, Any]:
    return {
        "program_id": program_id,
        "type": "sale",
        "customer_id": "cus_1",
        "amount": 1999,
        "external_id": key,
        **extra,
    }


def events_stored(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(Event)) or 0


def problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


# Amounts ---------------------------------------------------------------------------------------


def test_exponent_amount_is_refused_in_well_under_a_second_while_another_request_is_served(
    settings: Settings,
) -> None:
    # A database of its own: two requests really run at once, each with its own connection.
    with scratch_database(create_test_database) as (url, sessions):
        app = create_app(settings.model_copy(update={"database_url": url}), sessions)
        with sessions() as session:
            program = make_program(session)
            session.commit()
        with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as client:
            bad: dict[str, Any] = {}
            attack = {"events": [sale(program.id, f"x{i}", amount=EXPONENT) for i in range(2)]}

            def send_attack() -> None:
                bad["response"] = client.post("/v1/events/batch", json=attack)

            started = time.monotonic()
            thread = threading.Thread(target=send_attack)
            thread.start()
            good = client.post("/v1/events", json=sale(program.id, "good"))
            thread.join(timeout=30)
            elapsed = time.monotonic() - started
        assert good.status_code == 201, good.text
        results = bad["response"].json()["results"]
        assert [r["code"] for r in results] == ["invalid_amount", "invalid_amount"]
        assert elapsed < 5  # it took 43.5 s; the bound is generous on purpose


@pytest.mark.parametrize(
    ("amount", "rule"),
    [
        (EXPONENT, "amount_format"),
        ("1e999999", "amount_format"),  # was a 500
        ("1e3", "amount_format"),
        ("1E3", "amount_format"),
        ("1_000", "amount_format"),
        ("+5", "amount_format"),
        ("0x10", "amount_format"),
        ("Infinity", "amount_format"),
        ("NaN", "amount_format"),
        ("1.2.3", "amount_format"),
        ("19.", "amount_format"),
        ("\u0661\u0662", "amount_format"),  # Arabic-Indic digits, which Decimal accepts
        ("", "amount_format"),
        ("1" * 33, "amount_too_long"),
        ("19.999", "amount_too_precise"),
        (MAX_AMOUNT + 1, "amount_too_large"),
        ("10000000000000.01", "amount_too_large"),
        (2**63 - 1, "amount_too_large"),
        (10**4000, "amount_too_large"),
    ],
)
def test_amount_outside_the_format_or_the_maximum_is_refused_with_its_rule(
    client: TestClient, session: Session, program_id: str, amount: object, rule: str
) -> None:
    body = problem(
        client.post("/v1/events", json=sale(program_id, "k", amount=amount)), 422, "invalid_amount"
    )
    assert body["errors"] == [{"loc": ["body", "amount"], "msg": body["detail"], "type": rule}]
    assert events_stored(session) == 0


@pytest.mark.parametrize(
    ("amount", "minor"),
    [
        ("19.99", 1999),
        ("19.990", 1999),
        ("0.5", 50),
        (" 7 ", 700),
        (MAX_AMOUNT, MAX_AMOUNT),
        ("10000000000000.00", MAX_AMOUNT),
    ],
)
def test_amounts_in_the_format_up_to_the_maximum_are_accepted(
    client: TestClient, program_id: str, amount: object, minor: int
) -> None:
    response = client.post("/v1/events", json=sale(program_id, "k", amount=amount))
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == minor


def test_two_sales_of_2_63_minus_1_are_refused_at_input_everywhere_amounts_come_in(
    client: TestClient, session: Session, program_id: str
) -> None:
    biggest = 2**63 - 1
    for key in ("a", "b"):
        problem(
            client.post("/v1/events", json=sale(program_id, key, amount=biggest)),
            422,
            "invalid_amount",
        )
    batch = client.post(
        "/v1/events/batch",
        json={"events": [sale(program_id, k, amount=biggest) for k in ("c", "d")]},
    ).json()
    assert [r["code"] for r in batch["results"]] == ["invalid_amount", "invalid_amount"]
    deal = client.post("/v1/deals", json={"program_id": program_id, "customer_id": "cus_d"})
    assert deal.status_code == 201, deal.text
    close = client.post(f"/v1/deals/{deal.json()['id']}/close", json={"amount": str(biggest)})
    problem(close, 422, "invalid_amount")
    rules = client.post(
        f"/v1/programs/{program_id}/commission-rules",
        json={"rules": [{"event_type": "sale", "kind": "flat", "amount": biggest}]},
    )
    body = problem(rules, 422, "invalid_amount")
    assert body["errors"][0]["loc"] == ["body", "rules", "0", "amount"]
    minimums = client.post(
        "/v1/programs",
        json={
            "name": "Big",
            "currency": "USD",
            "default_destination_url": "https://a.example/",
            "payout_minimums": {"USD": biggest},
        },
    )
    assert minimums.status_code == 422
    assert events_stored(session) == 0


# Text ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"customer_id": "cus\x00"},
        {"external_id": "k\x00"},
        {"metadata": {"plan": "pro\x00"}},
        {"metadata": {"pl\x00an": "pro"}},
        {"metadata": {"deep": [{"x": ["ok", "b\x00d"]}]}},
        {"metadata": {"bell": "\x07"}},
        {"customer_id": "cus\t1"},  # whitespace is free text's, never an identifier's
        {"metadata": {"a\nb": 1}},
    ],
)
def test_nul_and_control_characters_in_an_event_are_refused_on_both_databases(
    client: TestClient, session: Session, program_id: str, extra: dict[str, Any]
) -> None:
    event = {**sale(program_id, "k"), **extra}
    body = problem(client.post("/v1/events", json=event), 422, "control_character")
    assert body["errors"][0]["type"] == "control_character"
    batch = client.post("/v1/events/batch", json={"events": [event, sale(program_id, "ok")]})
    assert [r["status"] for r in batch.json()["results"]] == ["rejected", "accepted"]
    assert batch.json()["results"][0]["code"] == "control_character"
    assert events_stored(session) == 1  # the good item only


def test_a_lone_surrogate_which_no_database_can_encode_is_refused(
    client: TestClient, session: Session, program_id: str
) -> None:
    event = sale(program_id, "k", metadata={"s": "SURROGATE"})
    raw = json.dumps(event).replace("SURROGATE", "\\ud800").encode()
    headers = {"Content-Type": "application/json"}
    problem(client.post("/v1/events", content=raw, headers=headers), 422, "control_character")
    batch = client.post("/v1/events/batch", content=b'{"events": [' + raw + b"]}", headers=headers)
    assert batch.json()["results"][0]["code"] == "control_character"
    assert events_stored(session) == 0


def test_tabs_and_newlines_are_allowed_in_free_text(client: TestClient, program_id: str) -> None:
    note = {"note": "line one\nline two\r\n\tindented"}
    response = client.post("/v1/events", json=sale(program_id, "k", metadata=note))
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == note


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        (
            "POST",
            "/v1/programs",
            {"name": "A\x00", "currency": "USD", "default_destination_url": "https://a.example/"},
        ),
        (
            "POST",
            "/v1/programs",
            {"name": "A", "currency": "USD", "default_destination_url": "https://a.example/\x00"},
        ),
        ("POST", "/v1/identify", {"customer_id": "c\x00", "program_id": "prg_x"}),
        ("POST", "/v1/clicks", {"link_key": "abc", "user_agent": "ua\x00"}),
        ("POST", "/v1/api-keys", {"name": "k\x00"}),
    ],
)
def test_nul_in_any_request_body_is_refused_before_the_database_sees_it(
    client: TestClient, method: str, path: str, body: dict[str, Any]
) -> None:
    problem(client.request(method, path, json=body), 422, "control_character")


@pytest.mark.parametrize(
    "url",
    [
        "/v1/links/%00",
        "/v1/events/evt_%00",
        "/v1/partners/%01x",
        "/v1/events?cursor=%00",
        "/v1/events?customer_id=%00",
        "/v1/events?type=a%0Ab",
        "/v1/partners?program_id=%00",
        "/v1/events?%00=1",
    ],
)
def test_nul_in_a_path_or_query_parameter_is_refused_on_both_databases(
    client: TestClient, url: str
) -> None:
    body = problem(client.get(url), 422, "control_character")
    assert body["errors"][0]["loc"] in (["path"], ["query"])


def test_a_control_character_in_the_idempotency_key_header_is_refused(
    client: TestClient, session: Session, program_id: str
) -> None:
    event = {k: v for k, v in sale(program_id, "k").items() if k != "external_id"}
    response = client.post("/v1/events", json=event, headers={"Idempotency-Key": "a\tb"})
    problem(response, 422, "control_character")
    assert events_stored(session) == 0


# Timestamps ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "at",
    [
        "0001-01-01T00:00:00+01:00",  # overflowed when converted to UTC
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1999-12-31T23:59:59Z",
        "2000-01-01T00:30:00+01:00",  # 1999 in UTC
        "2100-01-01T00:00:00Z",
    ],
)
def test_year_1_and_year_9999_timestamps_are_refused_not_an_overflow(
    client: TestClient, session: Session, program_id: str, at: str
) -> None:
    body = problem(
        client.post("/v1/events", json=sale(program_id, "k", occurred_at=at)),
        422,
        "timestamp_out_of_range",
    )
    assert body["errors"][0]["loc"] == ["body", "occurred_at"]
    batch = client.post(
        "/v1/events/batch", json={"events": [sale(program_id, "b", occurred_at=at)]}
    )
    assert batch.json()["results"][0]["code"] == "timestamp_out_of_range"
    rules = client.post(
        f"/v1/programs/{program_id}/commission-rules",
        json={"effective_from": at, "rules": []},
    )
    problem(rules, 422, "timestamp_out_of_range")
    replay = client.post(
        f"/v1/programs/{program_id}/attribution/replay", json={"model": "linear", "since": at}
    )
    problem(replay, 422, "timestamp_out_of_range")
    deal = client.post(
        "/v1/deals",
        json={"program_id": program_id, "customer_id": "c", "amount": 5, "closed_at": at},
    )
    problem(deal, 422, "timestamp_out_of_range")
    assert events_stored(session) == 0


def test_a_timestamp_far_in_the_past_but_in_range_is_still_too_old_for_an_event(
    client: TestClient, program_id: str
) -> None:
    old = (utc_now() - timedelta(days=3650)).isoformat()
    problem(
        client.post("/v1/events", json=sale(program_id, "k", occurred_at=old)),
        422,
        "occurred_at_too_old",
    )


# Nesting ---------------------------------------------------------------------------------------


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("path", ["/v1/events", "/v1/events/batch", "/v1/programs"])
def test_json_nested_1000_deep_is_refused_without_a_recursion_error(
    client: TestClient, session: Session, program_id: str, path: str
) -> None:
    raw = f'{{"type": "sale", "metadata": {{"a": {nested(1000)}}}}}'
    if path.endswith("batch"):
        raw = f'{{"events": [{raw}]}}'
    response = client.post(path, content=raw.encode(), headers={"Content-Type": "application/json"})
    body = problem(response, 422, "nesting_too_deep")
    assert body["errors"] == [{"loc": ["body"], "msg": body["detail"], "type": "nesting_too_deep"}]
    assert events_stored(session) == 0


def test_brackets_inside_strings_do_not_count_as_nesting(
    client: TestClient, program_id: str
) -> None:
    note = {"note": "[{" * 500 + '\\"' + "]}" * 10}
    response = client.post("/v1/events", json=sale(program_id, "k", metadata=note))
    assert response.status_code == 201, response.text


def test_metadata_nested_deeper_than_32_levels_is_refused_and_32_accepted(
    client: TestClient, session: Session, program_id: str
) -> None:
    def levels(n: int) -> Any:
        value: Any = "leaf"
        for _ in range(n):
            value = {"a": value}
        return value

    too_deep = sale(program_id, "deep", metadata=levels(33))
    problem(client.post("/v1/events", json=too_deep), 422, "nesting_too_deep")
    batch = client.post("/v1/events/batch", json={"events": [too_deep]}).json()
    assert batch["results"][0]["code"] == "nesting_too_deep"
    ok = client.post("/v1/events", json=sale(program_id, "ok", metadata=levels(32)))
    assert ok.status_code == 201, ok.text
    assert events_stored(session) == 1


def test_a_stripe_invoice_past_the_maximum_or_from_1970_is_skipped_not_a_failing_job(
    settings: Settings, session: Session, sessions: sessionmaker[Session]
) -> None:
    make_program(session)
    session.commit()
    configured = settings.model_copy(update={"stripe_webhook_secrets": SecretStr(STRIPE_SECRET)})
    with TestClient(create_app(configured, sessions)) as hook:
        too_large = stripe_event("invoice.paid", invoice("cus_big", 2**63 - 1))
        too_old = stripe_event("invoice.paid", invoice("cus_old", 100, status_transitions={}))
        too_old["created"] = 1  # 1970-01-01T00:00:01Z
        for event in (too_large, too_old):
            assert deliver(hook, event, STRIPE_SECRET).status_code == 200
    run_until_idle(sessions)
    handled = session.scalars(sa.select(StripeEvent.handled_at)).all()
    assert len(handled) == 2 and all(at is not None for at in handled)
    assert events_stored(session) == 0


# Sums beyond 64 bits ---------------------------------------------------------------------------

COPIES = 9_300
"""Sales at the maximum amount: their sum, 9.3 * 10^18, is past 2^63 - 1 (9.22 * 10^18)."""


def copy_sale(session: Session, event_id: str, copies: int) -> None:
    """``copies`` more of a sale as ingest stored it: the event, its attribution, commissions
    and ledger entries, each with new ids; inserted in bulk (ingesting 9,300 sales would be
    slow, and these are the rows the sums read)."""
    tables = {
        name: sa.Table(name, sa.MetaData(), autoload_with=session.connection())
        for name in ("events", "attributions", "commissions", "ledger_entries")
    }

    def rows(table: str, column: str, values: list[str]) -> list[dict[str, Any]]:
        t = tables[table]
        found = session.execute(sa.select(t).where(t.c[column].in_(values))).mappings()
        return [{k: v for k, v in row.items() if k != "seq"} for row in found]

    event = rows("events", "id", [event_id])
    credits = rows("attributions", "event_id", [event_id])
    commissions = rows("commissions", "event_id", [event_id])
    entries = rows("ledger_entries", "commission_id", [c["id"] for c in commissions])
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
    for i in range(copies):
        ids = {old: f"{old[:4]}{i:06d}{old[10:]}" for old in _ids(event, commissions, entries)}
        ids[event_id] = f"evt_copy{i:08d}"

        out["events"] += [{**_renamed(r, ids), "external_id": f"copy-{i}"} for r in event]
        out["attributions"] += [{**_renamed(r, ids), "id": f"atr_copy{i:08d}"} for r in credits]
        out["commissions"] += [_renamed(r, ids) for r in commissions]
        out["ledger_entries"] += [_renamed(r, ids) for r in entries]
    for name, values in out.items():
        session.execute(sa.insert(tables[name]), values)
    add_to_balances(session, out["ledger_entries"])  # as posting them would have
    session.commit()


def _renamed(row: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    return {k: ids.get(v, v) if isinstance(v, str) else v for k, v in row.items()}


def _ids(*groups: list[dict[str, Any]]) -> set[str]:
    return {
        row[key]
        for group in groups
        for row in group
        for key in ("id", "txn_id")
        if isinstance(row.get(key), str)
    }


def test_sums_of_amounts_at_the_maximum_past_64_bits_are_exact_on_both_databases(
    client: TestClient, session: Session, settings: Settings
) -> None:
    program = make_program(session, holding_days=0)
    partner = make_partner(session, program=program)
    set_rules(session, program, percent(10_000))  # the partner earns the whole sale
    first = ledger_sale(session, settings, partner, MAX_AMOUNT)
    approve_all(session, program)
    session.commit()
    copy_sale(session, first.id, COPIES - 1)
    total = COPIES * MAX_AMOUNT
    assert total > 2**63 - 1

    balance = client.get(f"/v1/partners/{partner.id}/balance")
    assert balance.status_code == 200, balance.text  # was 503 on SQLite: integer overflow
    assert balance.json()["balances"][0]["approved"] == total
    liability = client.get(f"/v1/programs/{program.id}/liability").json()
    assert liability["balances"][0]["approved"] == total
    overview = client.get(f"/v1/programs/{program.id}/analytics/overview").json()
    assert [r["sales"] for r in overview["revenue"]] == [total]
    partner_view = client.get(f"/v1/partners/{partner.id}/analytics").json()
    assert [r["sales"] for r in partner_view["revenue"]] == [total]
    assert_books_balance(session)

    run = client.post("/v1/payouts/run", json={"program_id": program.id})
    assert run.status_code == 201, run.text
    payouts = run.json()["summary"]["payouts"]
    assert len(payouts) == 2  # one BIGINT cannot hold the total: paid as two payouts
    assert sum(p["amount"] for p in payouts) == total
    assert all(p["amount"] <= 2**63 - 1 for p in payouts)
    after = client.get(f"/v1/partners/{partner.id}/balance").json()["balances"][0]
    assert (after["approved"], after["processing"]) == (0, total)
    assert_books_balance(session)
