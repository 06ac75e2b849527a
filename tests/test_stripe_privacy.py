"""Stripe events are stored without the customer's personal data: only what attribution and
payouts read, the email as its keyed hash. Objects start from Stripe's published examples
(``tests/stripe_server/shapes.py``), filled with a customer's details the way Stripe sends them."""

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from openpartner.api.app import create_app
from openpartner.events.models import Event
from openpartner.identity.models import IdentityEdge
from openpartner.identity.service import email_hash
from openpartner.integrations.stripe.minimize import PERSONAL_FIELDS, minimize_event
from openpartner.integrations.stripe.models import StripeEvent
from openpartner.settings import Settings
from openpartner.worker.queue import enqueue, run_until_idle
from tests.factories import make_click, make_link, make_partner, make_program
from tests.stripe_server import (
    make_charge,
    make_checkout_session,
    make_customer,
    make_event,
    make_invoice,
    signed_event,
)
from tests.stripe_server.shapes import FIXTURES_PATH, Obj, default_shapes

SECRET = "whsec_privacy"
EMAIL, NAME, PHONE = "Ada.Lovelace@example.com", "Ada Lovelace", "+44 20 7946 0958"
ADDRESS = {
    "city": "London",
    "country": "GB",
    "line1": "12 St James's Square",
    "line2": None,
    "postal_code": "SW1Y 4JH",
    "state": None,
}
PERSONAL = (EMAIL, EMAIL.lower(), NAME, PHONE, "St James", "SW1Y", "4242", "fp_ada", "203.0.113.9")


def with_customer(obj: Obj) -> Obj:
    """``obj`` with the customer's details everywhere Stripe's object of its kind has them."""
    person = {"email": EMAIL, "name": NAME, "phone": PHONE, "address": ADDRESS}
    shipping = {"name": NAME, "phone": PHONE, "address": ADDRESS}
    kind = obj["object"]
    if kind == "checkout.session":
        obj["customer_details"] = {**person, "tax_exempt": "none", "tax_ids": []}
        obj["customer_email"] = EMAIL
        obj["shipping_details"] = shipping
    elif kind == "invoice":
        obj.update(
            customer_email=EMAIL,
            customer_name=NAME,
            customer_phone=PHONE,
            customer_address=ADDRESS,
            customer_shipping=shipping,
        )
    elif kind == "charge":
        obj["billing_details"] = person
        obj["receipt_email"] = EMAIL
        obj["shipping"] = shipping
        obj["payment_method_details"] = {
            "type": "card",
            "card": {"brand": "visa", "last4": "4242", "fingerprint": "fp_ada"},
        }
    elif kind == "customer":
        obj.update(email=EMAIL, name=NAME, phone=PHONE, address=ADDRESS, shipping=shipping)
    obj["metadata"] = {**obj.get("metadata", {}), "buyer_ip": "203.0.113.9", "note": NAME}
    return obj


def personal_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {k for k in value if k in PERSONAL_FIELDS}
        for item in value.values():
            found |= personal_keys(item)
        return found
    if isinstance(value, list):
        return set().union(*(personal_keys(item) for item in value)) if value else set()
    return set()


def assert_nothing_personal(stored: dict[str, Any]) -> None:
    text = json.dumps(stored)
    assert [p for p in PERSONAL if p in text] == []
    assert personal_keys(stored) == set()


@pytest.fixture
def hook(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"stripe_webhook_secrets": SecretStr(SECRET)})
    with TestClient(create_app(configured, sessions)) as c:
        yield c


def deliver(hook: TestClient, event: Obj) -> dict[str, Any]:
    signed = signed_event(event, SECRET)
    response = hook.post(
        "/v1/integrations/stripe/webhook", content=signed.payload, headers=signed.headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def stored_payload(session: Session, event_id: str) -> dict[str, Any]:
    session.expire_all()
    return session.get_one(StripeEvent, event_id).payload


@pytest.mark.skipif(not FIXTURES_PATH.is_file(), reason=f"no Stripe examples at {FIXTURES_PATH}")
def test_no_personal_field_survives_in_any_of_stripes_example_objects() -> None:
    resources = json.loads(FIXTURES_PATH.read_text())["resources"]
    assert personal_keys(resources)  # the examples do carry them
    for kind, example in resources.items():
        event = make_event(f"{kind}.updated", example)
        kept = minimize_event(event)
        assert personal_keys(kept) == set(), kind
        assert kept["id"] == event["id"] and kept["type"] == event["type"]


def test_checkout_is_stored_without_the_customer_and_still_attributed(
    hook: TestClient, session: Session, sessions: sessionmaker[Session]
) -> None:
    program = make_program(session)
    click = make_click(
        session, link=make_link(session, partner=make_partner(session, program=program))
    )
    session.commit()
    checkout = with_customer(
        make_checkout_session(
            client_reference_id=click.id,
            customer="cus_ada",
            customer_email=EMAIL,
            amount_total=4900,
        )
    )
    event = make_event("checkout.session.completed", checkout)
    deliver(hook, event)
    stored = stored_payload(session, event["id"])
    assert_nothing_personal(stored)
    obj = stored["data"]["object"]
    assert obj["email_hash"] == email_hash(EMAIL)
    assert {k: obj[k] for k in ("client_reference_id", "customer", "amount_total", "mode")} == {
        "client_reference_id": click.id,
        "customer": "cus_ada",
        "amount_total": 4900,
        "mode": "payment",
    }
    assert obj["metadata"] == {}  # the merchant's own keys are not ours to keep
    run_until_idle(sessions)
    session.expire_all()
    kinds = session.scalars(sa.select(Event.type).where(Event.customer_id == "cus_ada")).all()
    assert sorted(kinds) == ["sale", "signup"]
    hashes = session.scalars(
        sa.select(IdentityEdge.email_hash).where(IdentityEdge.email_hash.is_not(None))
    ).all()
    assert hashes == [email_hash(EMAIL)]


def test_customer_invoice_and_refund_are_stored_without_personal_data(
    hook: TestClient, session: Session, sessions: sessionmaker[Session]
) -> None:
    program = make_program(session)
    click = make_click(
        session, link=make_link(session, partner=make_partner(session, program=program))
    )
    session.commit()
    customer = with_customer(
        make_customer(email=EMAIL, metadata={"openpartner_click_id": click.id})
    )
    invoice = with_customer(make_invoice(customer=customer["id"], amount_paid=4900))
    charge = with_customer(make_charge(customer=customer["id"], amount=4900, amount_refunded=900))
    charge["invoice"] = invoice["id"]
    events = [
        make_event("customer.created", customer),
        make_event("invoice.paid", invoice),
        make_event("charge.refunded", charge),
    ]
    for event in events:
        deliver(hook, event)
        run_until_idle(sessions)
    for event in events:
        assert_nothing_personal(stored_payload(session, event["id"]))
    created = stored_payload(session, events[0]["id"])["data"]["object"]
    assert created["metadata"] == {"openpartner_click_id": click.id}
    assert created["email_hash"] == email_hash(EMAIL)
    amounts = session.execute(
        sa.select(Event.type, Event.amount).where(Event.program_id == program.id)
    ).all()
    assert sorted(amounts) == [("refund", 900), ("sale", 4900)]
    bound = session.scalars(
        sa.select(IdentityEdge.customer_id).where(IdentityEdge.email_hash == email_hash(EMAIL))
    ).all()
    assert bound == [customer["id"]]


def test_an_event_stored_before_minimising_is_still_handled(
    session: Session, sessions: sessionmaker[Session]
) -> None:
    """Events stored by an earlier version kept the email: the handler hashes it itself."""
    program = make_program(session)
    click = make_click(
        session, link=make_link(session, partner=make_partner(session, program=program))
    )
    customer = with_customer(
        make_customer(email=EMAIL, metadata={"openpartner_click_id": click.id})
    )
    event = make_event("customer.created", customer)
    session.add(StripeEvent(id=event["id"], type=event["type"], payload=event))
    enqueue(session, "stripe.handle_event", {"stripe_event_id": event["id"]})
    session.commit()
    run_until_idle(sessions)
    session.expire_all()
    assert (
        session.scalar(
            sa.select(IdentityEdge.customer_id).where(IdentityEdge.email_hash == email_hash(EMAIL))
        )
        == customer["id"]
    )


def test_the_examples_are_the_shapes_in_use() -> None:
    """The objects above are Stripe's own examples whenever they are available."""
    assert default_shapes().source == (
        str(FIXTURES_PATH) if FIXTURES_PATH.is_file() else "built-in shapes"
    )
