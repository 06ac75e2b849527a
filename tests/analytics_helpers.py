"""Small data sets for the analytics tests: clicks bound by identify, touchpoints and events
through the API, each at a chosen time (the clock is frozen just after it)."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from openpartner.attribution.records import AttributionRow
from openpartner.clicks.models import Click
from openpartner.core.ids import new_id
from openpartner.core.time import clock
from openpartner.partners.models import Partner
from tests.factories import make_click, make_link


def day(text: str, hour: int = 12, minute: int = 0, second: int = 0) -> datetime:
    """``day("2025-03-01")`` is noon UTC on that day."""
    return datetime.fromisoformat(text).replace(hour=hour, minute=minute, second=second, tzinfo=UTC)


def event(
    client: TestClient,
    program_id: str,
    type: str,
    at: datetime,
    *,
    customer_id: str | None = None,
    amount: int | None = None,
    currency: str | None = None,
    **more: Any,
) -> dict[str, Any]:
    clock.freeze(at + timedelta(minutes=1))
    body = {
        "program_id": program_id,
        "type": type,
        "occurred_at": at.isoformat(),
        "external_id": f"ext-{secrets.token_hex(6)}",
        **({"customer_id": customer_id} if customer_id else {}),
        **({"amount": amount} if amount is not None else {}),
        **({"currency": currency} if currency else {}),
        **more,
    }
    response = client.post("/v1/events", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def click(
    session: Session,
    client: TestClient,
    partner: Partner,
    at: datetime,
    customer_id: str | None = None,
    **flags: bool,
) -> Click:
    """A click on a new link of the partner, bound to ``customer_id`` by identify."""
    made = make_click(session, link=make_link(session, partner=partner), at=at, **flags)
    session.commit()
    if customer_id is not None:
        clock.freeze(at + timedelta(seconds=30))
        bound = client.post(
            "/v1/identify",
            json={
                "program_id": partner.program_id,
                "click_id": made.id,
                "customer_id": customer_id,
            },
        )
        assert bound.status_code == 200, bound.text
    return made


def touchpoint(
    client: TestClient, partner: Partner, type: str, at: datetime, customer_id: str
) -> dict[str, Any]:
    clock.freeze(at + timedelta(seconds=30))
    response = client.post(
        "/v1/touchpoints",
        json={
            "partner_id": partner.id,
            "type": type,
            "customer_id": customer_id,
            "occurred_at": at.isoformat(),
        },
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def credit(
    session: Session,
    event: dict[str, Any],
    partner: Partner,
    amount: int,
    weight: Fraction,
    *,
    model: str = "linear",
    engine_version: str = "1",
    touch_kind: str = "click",
) -> None:
    """An attribution row written as the engine would for multi-touch models (the engine in
    this branch only derives last click; analytics must read any model)."""
    session.add(
        AttributionRow(
            id=new_id("att"),
            program_id=event["program_id"],
            event_id=event["id"],
            partner_id=partner.id,
            touch_id=new_id("clk"),
            touch_kind=touch_kind,
            weight=f"{weight.numerator}/{weight.denominator}",
            amount=amount,
            currency=event["currency"],
            model=model,
            params={},
            engine_version=engine_version,
        )
    )
    session.commit()
