"""Single events read their program's rules from each API process's cache (events/program_rules.py):
a change of the rules between two events is seen by the second, whatever the cache held."""

from datetime import timedelta

import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.commissions.models import Commission
from openpartner.core.time import utc_now
from tests.factories import make_click, make_link, make_partner, make_program


def bound_program(client: TestClient, session: Session) -> tuple[str, str]:
    """A program whose customer ``cus_1`` came through a partner's click two days ago."""
    program = make_program(session, currency="USD")
    partner = make_partner(session, program=program)
    click = make_click(
        session, link=make_link(session, partner=partner), at=utc_now() - timedelta(days=2)
    )
    session.commit()
    body = {"program_id": program.id, "click_id": click.id, "customer_id": "cus_1"}
    assert client.post("/v1/identify", json=body).status_code == 200
    return program.id, partner.id


def sale(program_id: str, key: str) -> dict[str, object]:
    return {
        "program_id": program_id,
        "type": "sale",
        "customer_id": "cus_1",
        "amount": 10_000,
        "external_id": key,
    }


def test_a_changed_attribution_window_applies_to_the_next_event(
    client: TestClient, session: Session
) -> None:
    program_id, partner_id = bound_program(client, session)
    first = client.post("/v1/events", json=sale(program_id, "o1")).json()
    assert [c["partner_id"] for c in first["attributed_to"]] == [partner_id]
    # The click is two days old: a one-day window leaves the next sale unattributed.
    patched = client.patch(f"/v1/programs/{program_id}", json={"attribution_window_days": 1})
    assert patched.status_code == 200
    second = client.post("/v1/events", json=sale(program_id, "o2")).json()
    assert second["attributed_to"] == []
    client.patch(f"/v1/programs/{program_id}", json={"attribution_window_days": 30})
    third = client.post("/v1/events", json=sale(program_id, "o3")).json()
    assert [c["partner_id"] for c in third["attributed_to"]] == [partner_id]


def test_commission_rules_added_apply_to_the_next_event(
    client: TestClient, session: Session
) -> None:
    program_id, _ = bound_program(client, session)
    first = client.post("/v1/events", json=sale(program_id, "o1")).json()
    rules = {"rules": [{"event_type": "sale", "kind": "percent", "rate_bps": 1000}]}
    added = client.post(f"/v1/programs/{program_id}/commission-rules", json=rules)
    assert added.status_code == 201
    second = client.post("/v1/events", json=sale(program_id, "o2")).json()
    commissions = session.scalars(sa.select(Commission).where(Commission.program_id == program_id))
    assert {(c.event_id, c.amount) for c in commissions} == {(second["id"], 1000)}
    assert first["id"] != second["id"]
