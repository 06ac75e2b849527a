"""Stripe as an event source, driven through the official library's signing and parsing."""

import json
import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
import stripe
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy.orm import Session, sessionmaker

from openpartner.api.app import create_app
from openpartner.events.models import Event
from openpartner.integrations.stripe.models import StripeEvent
from openpartner.settings import Settings
from openpartner.worker.queue import run_until_idle
from tests.factories import make_click, make_link, make_partner, make_program

NEW, OLD = "whsec_new_" + secrets.token_hex(8), "whsec_old_" + secrets.token_hex(8)


@pytest.fixture
def hook(settings: Settings, sessions: sessionmaker[Session]) -> Iterator[TestClient]:
    configured = settings.model_copy(update={"stripe_webhook_secrets": SecretStr(f"{NEW},{OLD}")})
    with TestClient(create_app(configured, sessions)) as c:
        yield c


def stripe_event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2024-06-20",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": kind,
        "data": {"object": obj},
    }


def deliver(client: TestClient, event: dict[str, Any], secret: str = NEW) -> Any:
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret)
    return client.post(
        "/v1/integrations/stripe/webhook",
        content=payload,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


def sales(session: Session, kind: str = "sale") -> list[Event]:
    return list(session.scalars(sa.select(Event).where(Event.type == kind).order_by(Event.seq)))


def invoice(customer: str, amount: int, currency: str = "usd", **extra: Any) -> dict[str, Any]:
    return {
        "id": "in_" + secrets.token_hex(8),
        "object": "invoice",
        "customer": customer,
        "amount_paid": amount,
        "currency": currency,
        "status": "paid",
        "status_transitions": {"paid_at": int(time.time())},
        **extra,
    }


def test_no_secret_configured_is_503(client: TestClient) -> None:
    response = deliver(client, stripe_event("invoice.paid", {}))
    assert response.status_code == 503
    assert response.json()["code"] == "stripe_not_configured"


def test_missing_or_invalid_signature_is_400(hook: TestClient, session: Session) -> None:
    event = stripe_event("invoice.paid", invoice("cus_1", 100))
    missing = hook.post("/v1/integrations/stripe/webhook", content=json.dumps(event))
    assert missing.status_code == 400 and missing.json()["code"] == "missing_signature"
    forged = deliver(hook, event, secret="whsec_attacker")
    assert forged.status_code == 400 and forged.json()["code"] == "invalid_signature"
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, NEW)
    tampered = hook.post(
        "/v1/integrations/stripe/webhook",
        content=payload.replace('"amount_paid": 100', '"amount_paid": 999'),
        headers={"Stripe-Signature": header},
    )
    assert tampered.status_code == 400
    assert session.scalar(sa.select(sa.func.count()).select_from(StripeEvent)) == 0


def test_rotated_secret_still_verifies(hook: TestClient) -> None:
    response = deliver(hook, stripe_event("customer.updated", {"id": "cus_1"}), secret=OLD)
    assert response.status_code == 200
    assert response.json() == {"received": True, "duplicate": False}


def test_invoice_paid_in_jpy_becomes_a_sale_and_a_replay_changes_nothing(
    hook: TestClient, session: Session, sessions: sessionmaker[Session]
) -> None:
    make_program(session, currency="JPY")
    session.commit()
    event = stripe_event("invoice.paid", invoice("cus_jp", 5000, "jpy"))
    assert deliver(hook, event).json()["duplicate"] is False
    assert deliver(hook, event).json()["duplicate"] is True
    run_until_idle(sessions)
    deliver(hook, event)
    run_until_idle(sessions)
    [sale] = sales(session)
    assert (sale.amount, sale.currency, sale.customer_id, sale.source) == (
        5000,
        "JPY",
        "cus_jp",
        "stripe",
    )
    assert session.scalar(sa.select(sa.func.count()).select_from(StripeEvent)) == 1


def test_checkout_with_click_identifies_signs_up_and_sells(
    hook: TestClient, session: Session, sessions: sessionmaker[Session]
) -> None:
    program = make_program(session)
    link = make_link(session, partner=make_partner(session, program=program))
    click = make_click(session, link=link)
    session.commit()
    checkout = {
        "id": "cs_" + secrets.token_hex(8),
        "object": "checkout.session",
        "client_reference_id": click.id,
        "customer": "cus_42",
        "mode": "payment",
        "payment_status": "paid",
        "amount_total": 4200,
        "currency": "usd",
        "payment_intent": "pi_" + secrets.token_hex(6),
        "customer_details": {"email": "buyer@example.com"},
    }
    deliver(hook, stripe_event("checkout.session.completed", checkout))
    run_until_idle(sessions)
    [signup] = sales(session, "signup")
    [sale] = sales(session)
    assert signup.customer_id == sale.customer_id == "cus_42"
    assert sale.response["attributed_to"] == [
        {"partner_id": link.partner_id, "amount": 4200, "currency": "USD"}
    ]


def test_partial_then_full_refund_from_charge_refunded(
    hook: TestClient, session: Session, sessions: sessionmaker[Session]
) -> None:
    make_program(session)
    session.commit()
    inv = invoice("cus_r", 3000)
    deliver(hook, stripe_event("invoice.paid", inv))
    run_until_idle(sessions)
    charge = {
        "id": "ch_1",
        "object": "charge",
        "invoice": inv["id"],
        "amount": 3000,
        "currency": "usd",
        "refunded": False,
    }
    deliver(hook, stripe_event("charge.refunded", {**charge, "amount_refunded": 1000}))
    deliver(
        hook, stripe_event("charge.refunded", {**charge, "amount_refunded": 3000, "refunded": True})
    )
    run_until_idle(sessions)
    refunds = sales(session, "refund")
    assert [r.amount for r in refunds] == [1000, 2000]
    assert {r.refund_of for r in refunds} == {sales(session)[0].id}


def test_invoice_with_a_partner_promotion_code_is_attributed(
    hook: TestClient, client: TestClient, session: Session, sessions: sessionmaker[Session]
) -> None:
    program = make_program(session)
    partner = make_partner(session, program=program)
    session.commit()
    client.post(
        "/v1/promotion-codes",
        json={"partner_id": partner.id, "code": "ADA20", "stripe_promotion_code_id": "promo_123"},
    )
    inv = invoice(
        "cus_c",
        8000,
        discounts=[{"id": "di_1", "object": "discount", "promotion_code": "promo_123"}],
    )
    deliver(hook, stripe_event("invoice.paid", inv))
    run_until_idle(sessions)
    [sale] = sales(session)
    assert sale.promotion_code == "ADA20"
    assert sale.response["attributed_to"][0]["partner_id"] == partner.id


def test_customer_created_with_our_metadata_identifies(
    hook: TestClient, session: Session, sessions: sessionmaker[Session]
) -> None:
    program = make_program(session)
    link = make_link(session, partner=make_partner(session, program=program))
    click = make_click(session, link=link)
    session.commit()
    customer = {
        "id": "cus_meta",
        "object": "customer",
        "email": "x@example.com",
        "metadata": {"openpartner_click_id": click.id},
    }
    deliver(hook, stripe_event("customer.created", customer))
    deliver(hook, stripe_event("invoice.paid", invoice("cus_meta", 999)))
    run_until_idle(sessions)
    [sale] = sales(session)
    assert sale.response["attributed_to"][0]["partner_id"] == link.partner_id
