"""Persisted attribution under versioned configs, explanations, what-ifs and replay."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as settings_
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from openpartner.attribution.configs import AttributionConfig
from openpartner.attribution.records import AttributionRow
from openpartner.attribution.replay import replay
from openpartner.commissions.models import Adjustment
from openpartner.core.time import clock
from openpartner.partners.models import Partner
from openpartner.programs.models import Program
from openpartner.settings import Settings
from tests.factories import make_click, make_link, make_partner, make_program
from tests.ledger_helpers import assert_books_balance, pay_all, percent, record, set_rules

T0 = datetime(2026, 3, 2, 12, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen() -> None:
    clock.freeze(T0)


def touch(session: Session, partner: Partner, customer: str, at: datetime) -> str:
    program = session.get_one(Program, partner.program_id)
    click = make_click(session, link=make_link(session, partner=partner), at=at)
    from openpartner.identity.service import bind

    bind(session, program, customer_id=customer, click_id=click.id)
    return click.id


@pytest.fixture
def journey(session: Session) -> dict[str, str]:
    """Customer c1: partner A clicked 3 days ago, B 1 day ago; one sale of 100.00 today."""
    program = make_program(session)
    a = make_partner(session, program=program, name="A")
    b = make_partner(session, program=program, name="B")
    touch(session, a, "c1", T0 - timedelta(days=3))
    touch(session, b, "c1", T0 - timedelta(days=1))
    session.commit()
    return {"program": program.id, "a": a.id, "b": b.id}


def sale(
    client: TestClient, ctx: dict[str, str], key: str, amount: int = 10_000
) -> dict[str, object]:
    body = {
        "program_id": ctx["program"],
        "type": "sale",
        "customer_id": "c1",
        "amount": amount,
        "external_id": key,
    }
    response = client.post("/v1/events", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def rows(session: Session, event_id: str) -> list[tuple[str, int, str, str]]:
    return [
        (r.partner_id, r.amount, r.weight, r.model)
        for r in session.scalars(
            sa.select(AttributionRow)
            .where(AttributionRow.event_id == event_id)
            .order_by(AttributionRow.seq)
        )
    ]


def test_event_is_attributed_under_the_program_model(
    client: TestClient, session: Session, journey: dict[str, str]
) -> None:
    client.patch(f"/v1/programs/{journey['program']}", json={"attribution_model": "linear"})
    event = sale(client, journey, "s1", amount=10_001)
    assert rows(session, str(event["id"])) == [
        (journey["a"], 5001, "1/2", "linear"),  # the odd unit goes to the earlier touch
        (journey["b"], 5000, "1/2", "linear"),
    ]


def test_a_program_change_never_rewrites_the_past(
    client: TestClient, session: Session, journey: dict[str, str]
) -> None:
    old = sale(client, journey, "before")
    clock.advance(timedelta(minutes=1))
    client.patch(f"/v1/programs/{journey['program']}", json={"attribution_model": "first_click"})
    versions = session.scalars(
        sa.select(AttributionConfig.reason)
        .where(AttributionConfig.program_id == journey["program"])
        .order_by(AttributionConfig.id)
    ).all()
    assert versions == ["created", "updated"]
    clock.advance(timedelta(minutes=1))
    new = sale(client, journey, "after")
    assert [r[0] for r in rows(session, str(old["id"]))] == [journey["b"]]  # still last click
    assert [r[0] for r in rows(session, str(new["id"]))] == [journey["a"]]  # first click
    # Re-deriving the old event (a late identify) keeps the version in force at its time.
    from openpartner.attribution.service import rederive_customer

    rederive_customer(session, journey["program"], "c1")
    assert [r[0] for r in rows(session, str(old["id"]))] == [journey["b"]]


def test_explanation_lists_considered_and_excluded_touches(
    client: TestClient, session: Session, journey: dict[str, str]
) -> None:
    program = session.get_one(Program, journey["program"])
    late = make_partner(session, program=program, name="Late")
    touch(session, late, "c1", T0 + timedelta(hours=1))  # after the sale: excluded
    bot_link = make_link(session, partner=late)
    bot = make_click(session, link=bot_link, at=T0 - timedelta(hours=5), bot=True)
    from openpartner.identity.service import bind

    bind(session, program, customer_id="c1", click_id=bot.id)
    session.commit()
    event = sale(client, journey, "s1")
    body = client.get(f"/v1/events/{event['id']}/attribution").json()
    assert body["model"] == "last_click" and body["what_if"] is False
    assert [t["partner_id"] for t in body["considered"]] == [journey["a"], journey["b"]]
    assert sorted(e["reason"] for e in body["excluded"]) == ["after_conversion", "flagged"]
    assert [(p["partner_id"], p["amount"], p["share"]["percent"]) for p in body["partners"]] == [
        (journey["b"], 10_000, "100.00")
    ]
    assert [s["partner_id"] for s in body["stored"]] == [journey["b"]]


def test_what_if_computes_without_writing(
    client: TestClient, session: Session, journey: dict[str, str]
) -> None:
    event = sale(client, journey, "s1", amount=9_999)
    before = rows(session, str(event["id"]))
    body = client.get(
        f"/v1/events/{event['id']}/attribution",
        params={"model": "position", "params": '{"first": 30, "middle": 0, "last": 70}'},
    ).json()
    assert body["what_if"] is True
    assert [(p["partner_id"], p["amount"], p["share"]["fraction"]) for p in body["partners"]] == [
        (journey["a"], 3000, "3/10"),
        (journey["b"], 6999, "7/10"),
    ]
    assert rows(session, str(event["id"])) == before
    bad = client.get(
        f"/v1/events/{event['id']}/attribution", params={"model": "linear", "params": "[1]"}
    )
    assert bad.status_code == 422


def test_deal_breakdown_under_any_model(client: TestClient, session: Session) -> None:
    program = make_program(session)
    partners = [make_partner(session, program=program, name=n) for n in ("R", "D", "C")]
    session.commit()
    deal = client.post("/v1/deals", json={"program_id": program.id, "customer_id": "acct"}).json()
    for partner, kind, hours in zip(
        partners, ("referral", "demo", "closer"), (30, 20, 10), strict=True
    ):
        client.post(
            "/v1/touchpoints",
            json={
                "partner_id": partner.id,
                "deal_id": deal["id"],
                "type": kind,
                "occurred_at": (T0 - timedelta(hours=hours)).isoformat(),
            },
        )
    client.post(f"/v1/deals/{deal['id']}/close", json={"amount": 15_000})
    body = client.get(f"/v1/deals/{deal['id']}/attribution", params={"model": "role_based"}).json()
    # closer 35, referral 25, demo 15 -> 25/75, 15/75, 35/75 of 150.00
    assert [(p["roles"], p["amount"]) for p in body["partners"]] == [
        (["referral"], 5000),
        (["demo"], 3000),
        (["closer"], 7000),
    ]
    assert sum(p["amount"] for p in body["partners"]) == 15_000
    open_deal = client.post("/v1/deals", json={"program_id": program.id}).json()
    assert client.get(f"/v1/deals/{open_deal['id']}/attribution").json()["code"] == "deal_open"


def test_replay_dry_run_reports_and_writes_nothing(
    client: TestClient, session: Session, journey: dict[str, str]
) -> None:
    event = sale(client, journey, "s1")
    before = rows(session, str(event["id"]))
    response = client.post(
        f"/v1/programs/{journey['program']}/attribution/replay", json={"model": "linear"}
    )
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["dry_run"] is True and report["events"] == 1 and report["changed_events"] == 1
    assert [
        (p["partner_id"], p["current"], p["replayed"], p["difference"]) for p in report["partners"]
    ] == sorted([(journey["a"], 0, 5000, 5000), (journey["b"], 10_000, 5000, -5000)])
    assert rows(session, str(event["id"])) == before
    assert session.get_one(Program, journey["program"]).attribution_model == "last_click"
    # Where the time went, per statement; a dry run writes nothing, so it times no insert.
    assert "create replay_touches" in report["steps"]
    assert "insert attributions" not in report["steps"]


def test_replay_applies_a_new_version_and_twice_is_a_no_op(
    session: Session, settings: Settings, journey: dict[str, str]
) -> None:
    program = session.get_one(Program, journey["program"])
    event = record(session, settings, program, "sale", customer_id="c1", amount=10_000)
    applied = replay(session, program.id, model="linear", dry_run=False)
    assert applied.changed_events == 1 and applied.config_version is not None
    assert {"create replay_touches", "insert attributions"} <= set(applied.steps)
    assert rows(session, event.id) == [
        (journey["a"], 5000, "1/2", "linear"),
        (journey["b"], 5000, "1/2", "linear"),
    ]
    assert program.attribution_model == "linear"
    again = replay(session, program.id, model="linear", dry_run=False)
    assert again.changed_events == 0
    assert all(d.difference == 0 for d in again.partners.values())
    assert len(rows(session, event.id)) == 2  # never a second set


def test_replay_since_leaves_earlier_events_alone(
    session: Session, settings: Settings, journey: dict[str, str]
) -> None:
    program = session.get_one(Program, journey["program"])
    early = record(
        session, settings, program, "sale", customer_id="c1", amount=100, at=T0 - timedelta(hours=2)
    )
    late = record(session, settings, program, "sale", customer_id="c1", amount=100)
    report = replay(
        session, program.id, model="first_click", since=T0 - timedelta(hours=1), dry_run=False
    )
    assert report.events == 1
    assert [r[0] for r in rows(session, early.id)] == [journey["b"]]
    assert [r[0] for r in rows(session, late.id)] == [journey["a"]]


def test_replay_of_paid_money_becomes_adjustments_never_rewrites(
    session: Session, settings: Settings, journey: dict[str, str]
) -> None:
    program = session.get_one(Program, journey["program"])
    program.holding_days = 0
    set_rules(session, program, percent(1000))
    record(session, settings, program, "sale", customer_id="c1", amount=10_000)
    pay_all(session, program)  # B was paid 10.00
    replay(session, program.id, model="linear", dry_run=False)
    adjustments = [(a.partner_id, a.amount) for a in session.scalars(sa.select(Adjustment))]
    assert adjustments == [(journey["b"], -500)]
    assert_books_balance(session)


def test_replay_needs_programs_write_and_a_known_model(
    client: TestClient, anon: TestClient, key_for: object, journey: dict[str, str]
) -> None:
    token = key_for("attribution:read")  # type: ignore[operator]
    url = f"/v1/programs/{journey['program']}/attribution/replay"
    assert anon.post(url, json={"model": "linear"}, headers={"X-API-Key": token}).status_code == 403
    assert client.post(url, json={"model": "most_clicks"}).status_code == 422


@settings_(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    model=st.sampled_from(
        ["last_click", "first_click", "linear", "partner_equal", "position", "time_decay"]
    ),
    clicks=st.lists(
        st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(1, 90 * 24)),
        min_size=1,
        max_size=8,
    ),
    sales=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**7)), min_size=1, max_size=4),
)
def test_replaying_twice_is_a_no_op(
    session: Session,
    settings: Settings,
    model: str,
    clicks: list[tuple[int, int, int]],
    sales: list[tuple[int, int]],
) -> None:
    """Any history, any model: the second replay changes nothing, and every event's rows sum
    exactly to its amount."""
    with session.begin_nested() as nested:
        program = make_program(session)
        partners = [make_partner(session, program=program) for _ in range(3)]
        for partner_index, customer, hours_ago in clicks:
            touch(session, partners[partner_index], f"c{customer}", T0 - timedelta(hours=hours_ago))
        events = [
            record(session, settings, program, "sale", customer_id=f"c{customer}", amount=amount)
            for customer, amount in sales
        ]
        replay(session, program.id, model=model, dry_run=False)
        second = replay(session, program.id, model=model, dry_run=False)
        assert second.changed_events == 0
        for event in events:
            assert sum(r[1] for r in rows(session, event.id)) in (0, event.amount)
        nested.rollback()


@pytest.mark.parametrize(
    ("alias", "model"),
    [
        ("equal", "partner_equal"),
        ("first-touch", "first_click"),
        ("last-touch", "last_click"),
        ("role-based", "role_based"),
        ("time-decay", "time_decay"),
    ],
)
def test_the_second_seeds_model_names_are_aliases_everywhere_a_model_is_named(
    client: TestClient, session: Session, journey: dict[str, str], alias: str, model: str
) -> None:
    program = journey["program"]
    created = client.post(
        "/v1/programs",
        json={
            "name": "Seeded",
            "currency": "USD",
            "default_destination_url": "https://seed.example/",
            "attribution_model": alias,
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["attribution_model"] == model
    patched = client.patch(f"/v1/programs/{program}", json={"attribution_model": alias})
    assert patched.json()["attribution_model"] == model
    event = sale(client, journey, "s1")
    what_if = client.get(f"/v1/events/{event['id']}/attribution", params={"model": alias})
    assert what_if.json()["model"] == model
    deal = client.post("/v1/deals", json={"program_id": program, "customer_id": "c1"}).json()
    closed = client.post(f"/v1/deals/{deal['id']}/close", json={"amount": 100, "model": alias})
    assert closed.json()["model"] == model
    breakdown = client.get(f"/v1/deals/{deal['id']}/attribution", params={"model": alias})
    assert breakdown.json()["model"] == model
    report = client.post(f"/v1/programs/{program}/attribution/replay", json={"model": alias})
    assert report.status_code == 200, report.text
    assert report.json()["model"] == model
    assert replay(session, program, model=alias).model == model


def test_an_unknown_model_or_a_window_out_of_range_answers_its_own_code(
    client: TestClient, journey: dict[str, str]
) -> None:
    program = journey["program"]
    event = sale(client, journey, "s1")
    attribution = f"/v1/events/{event['id']}/attribution"
    for method, path, body, params in (
        ("PATCH", f"/v1/programs/{program}", {"attribution_model": "equal_split"}, None),
        ("POST", f"/v1/programs/{program}/attribution/replay", {"model": "shapley"}, None),
        ("POST", "/v1/deals", {"program_id": program, "model": "Linear"}, None),
        ("GET", attribution, None, {"model": "u_shape"}),
    ):
        refused = client.request(method, path, json=body, params=params)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid_model", refused.json()
        assert "partner_equal" in refused.json()["errors"][0]["msg"]
    for days in (0, 366, "30", 1.5):
        cases: list[tuple[str, str, dict[str, object] | None, dict[str, str | float] | None]] = [
            ("PATCH", f"/v1/programs/{program}", {"attribution_window_days": days}, None),
            (
                "POST",
                f"/v1/programs/{program}/attribution/replay",
                {"model": "linear", "window_days": days},
                None,
            ),
            ("GET", attribution, None, {"window_days": days}),
        ]
        for method, path, payload, query in cases:
            if query is not None and days == "30":
                continue  # a query string is text: "30" is thirty days there
            refused = client.request(method, path, json=payload, params=query)
            assert refused.status_code == 422, refused.text
            assert refused.json()["code"] == "invalid_window", refused.json()
    for days in (1, 365):
        assert client.get(attribution, params={"window_days": days}).status_code == 200
    both = client.patch(
        f"/v1/programs/{program}",
        json={"attribution_model": "nope", "attribution_window_days": 0},
    )
    assert both.json()["code"] == "validation_error"  # several rules: every field in errors
    assert {e["type"] for e in both.json()["errors"]} == {"invalid_model", "invalid_window"}


def test_replay_report_counts_every_event_whose_credit_moves_and_lists_only_moved_totals(
    client: TestClient, session: Session, journey: dict[str, str]
) -> None:
    program = journey["program"]
    a = session.get_one(Partner, journey["a"])
    touch(session, a, "c1", T0 - timedelta(days=2))  # A, A, B
    session.commit()
    lead = client.post(
        "/v1/events",
        json={"program_id": program, "type": "lead", "customer_id": "c1", "external_id": "l1"},
    )
    assert lead.status_code == 201, lead.text
    sale(client, journey, "s1", amount=9_000)
    url = f"/v1/programs/{program}/attribution/replay"

    def dry_run(model: str) -> dict[str, Any]:
        response = client.post(url, json={"model": model})
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    # The lead earns 0 whoever has it: its credit moving still counts (last click B -> A 2/3).
    report = dry_run("linear")
    assert report["changed_events"] == 2
    assert report["partners"] == sorted(
        [
            {
                "partner_id": journey["a"],
                "currency": "USD",
                "current": 0,
                "replayed": 6000,
                "difference": 6000,
            },
            {
                "partner_id": journey["b"],
                "currency": "USD",
                "current": 9000,
                "replayed": 3000,
                "difference": -6000,
            },
        ],
        key=lambda p: str(p["partner_id"]),
    )  # by partner id; no all-zero row of the lead's, with currency null
    replay(session, program, model="linear", dry_run=False)
    session.commit()
    # Set-based (partner_equal) and per event (position): the lead's split moves in both.
    for model in ("partner_equal", "position"):
        report = dry_run(model)
        assert report["changed_events"] == 2, model
        assert {p["currency"] for p in report["partners"]} == {"USD"}
    # Nothing moves: nothing counted, nothing listed.
    assert (dry_run("linear")["changed_events"], dry_run("linear")["partners"]) == (0, [])
