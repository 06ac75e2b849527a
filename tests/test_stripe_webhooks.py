"""Signed webhook payloads: Stripe's signature scheme, verified by the official library."""

from __future__ import annotations

import time

import pytest
import stripe
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from openpartner.integrations.stripe import StripeNotConfigured, verify_event
from tests.stripe_server import (
    StripeServer,
    make_charge,
    make_checkout_session,
    make_customer,
    make_discount,
    make_event,
    make_invoice,
    make_promotion_code,
    signed_event,
)
from tests.stripe_server.shapes import Obj


def test_signed_event_verifies_with_the_stripe_library(stripe_server: StripeServer) -> None:
    account = stripe_server.create_account(ready=False)
    event = stripe_server.mark_account_ready(account["id"])
    signed = stripe_server.sign(event)
    assert signed.signature.startswith("t=") and ",v1=" in signed.signature
    verified = stripe.Webhook.construct_event(
        signed.payload, signed.signature, stripe_server.webhook_secret
    )
    assert (verified.id, verified.type) == (event["id"], "account.updated")
    assert verified.data.object["payouts_enabled"] is True


@pytest.mark.parametrize("tamper", ["payload", "secret", "stale"])
def test_tampered_wrongly_keyed_or_stale_event_is_refused(
    stripe_server: StripeServer, tamper: str
) -> None:
    event = make_event("invoice.paid", make_invoice(amount_paid=4900))
    stale = int(time.time()) - 3600  # Stripe's default tolerance is 300 s
    signed = stripe_server.sign(event, timestamp=stale if tamper == "stale" else None)
    payload = signed.payload.replace(b"4900", b"9900") if tamper == "payload" else signed.payload
    secret = "whsec_someone_else" if tamper == "secret" else stripe_server.webhook_secret
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(payload, signed.signature, secret)


def test_product_verifies_with_any_of_its_rotated_secrets() -> None:
    event = make_event("customer.created", make_customer(email="a@example.com"))
    old = signed_event(event, "whsec_old")
    assert verify_event(old.payload, old.signature, ["whsec_new", "whsec_old"]).id == event["id"]
    with pytest.raises(stripe.SignatureVerificationError):
        verify_event(old.payload, old.signature, ["whsec_new"])
    with pytest.raises(StripeNotConfigured):
        verify_event(old.payload, old.signature, [])


def _roundtrip(server: StripeServer, event: Obj) -> stripe.Event:
    signed = server.sign(event)
    verified: stripe.Event = stripe.Webhook.construct_event(
        signed.payload, signed.signature, server.webhook_secret
    )
    return verified


def test_payloads_for_the_events_the_product_handles(stripe_server: StripeServer) -> None:
    customer = make_customer(email="buyer@example.com", metadata={"op_customer": "u_1"})
    promo = make_promotion_code("PARTNER20")
    discount = make_discount(promotion_code=promo["id"], customer=customer["id"])
    session = make_checkout_session(
        amount_total=3920,
        amount_discount=980,
        client_reference_id="clk_123",
        customer=customer["id"],
        promotion_code=promo["id"],
    )
    invoice = make_invoice(
        amount_paid=3920, amount_discount=980, customer=customer["id"], discounts=[discount["id"]]
    )
    charge = make_charge(amount=3920, amount_refunded=1000, customer=customer["id"])

    got = _roundtrip(stripe_server, make_event("checkout.session.completed", session)).data.object
    assert (got["client_reference_id"], got["amount_total"], got["currency"]) == (
        "clk_123",
        3920,
        "usd",
    )
    assert got["discounts"][0]["promotion_code"] == promo["id"]
    assert got["total_details"]["amount_discount"] == 980

    got = _roundtrip(stripe_server, make_event("invoice.paid", invoice)).data.object
    assert (got["amount_paid"], got["customer"], got["status"]) == (3920, customer["id"], "paid")
    assert got["discounts"] == [discount["id"]]
    assert [d.to_dict() for d in got["total_discount_amounts"]] == [
        {"amount": 980, "discount": discount["id"]}
    ]

    got = _roundtrip(stripe_server, make_event("charge.refunded", charge)).data.object
    assert (got["amount"], got["amount_refunded"], got["refunded"]) == (3920, 1000, False)

    got = _roundtrip(stripe_server, make_event("customer.created", customer)).data.object
    assert got["metadata"]["op_customer"] == "u_1"


def test_events_the_server_emits_carry_the_request_that_caused_them(
    stripe_api: stripe.StripeClient, stripe_server: StripeServer
) -> None:
    account = stripe_server.create_account(ready=True)
    transfer = stripe_api.v1.transfers.create(
        {"amount": 700, "currency": "usd", "destination": account["id"]},
        {"idempotency_key": "payout-1"},
    )
    (created,) = stripe_server.events("transfer.created")
    assert created["data"]["object"]["id"] == transfer.id
    assert created["request"]["idempotency_key"] == "payout-1"
    assert created["request"]["id"].startswith("req_")
    reversed_event = stripe_server.reverse_transfer(transfer.id)
    assert reversed_event["request"] == {"id": None, "idempotency_key": None}  # not via the API


def test_deliver_posts_the_signed_event_to_an_app(stripe_server: StripeServer) -> None:
    app = FastAPI()
    received: list[str] = []

    @app.post("/stripe/webhooks")
    async def hook(request: Request) -> dict[str, str]:
        body = await request.body()
        event = verify_event(
            body, request.headers["stripe-signature"], [stripe_server.webhook_secret]
        )
        received.append(event.type)
        return {"id": event.id}

    account = stripe_server.create_account(ready=True)
    event = stripe_server.events("account.updated")[0]
    with TestClient(app) as client:
        response = stripe_server.deliver(event, client, "/stripe/webhooks")
    assert response.status_code == 200 and response.json() == {"id": event["id"]}
    assert received == ["account.updated"] and event["account"] == account["id"]
