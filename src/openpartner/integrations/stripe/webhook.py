"""``POST /v1/integrations/stripe/webhook``: verify the signature with the official library
(every configured secret, for rotation), store the event once under Stripe's id without the
customer's personal data (``minimize.py``), and hand it to a job. The response never waits
for the handling."""

from __future__ import annotations

import json
from typing import Annotated, Any

import stripe
from fastapi import APIRouter, Depends, Request
from sqlalchemy.exc import IntegrityError

from openpartner.api.deps import DbSession, public
from openpartner.core.errors import BadRequest
from openpartner.integrations.stripe.client import verify_event, webhook_secrets
from openpartner.integrations.stripe.minimize import minimize_event
from openpartner.integrations.stripe.models import StripeEvent
from openpartner.worker.queue import enqueue

router = APIRouter(prefix="/v1/integrations/stripe", tags=["stripe"])


def verify(payload: bytes, signature: str | None, secrets: list[str]) -> dict[str, Any]:
    """The verified event as plain JSON; 400 for a missing or wrong signature."""
    if secrets and not signature:
        raise BadRequest("The Stripe-Signature header is missing.", code="missing_signature")
    try:
        verify_event(payload, signature or "", secrets)
    except stripe.SignatureVerificationError:
        raise BadRequest(
            "The Stripe signature does not verify.", code="invalid_signature"
        ) from None
    except ValueError:
        raise BadRequest("The payload is not a Stripe event.", code="invalid_payload") from None
    data = json.loads(payload)
    if (
        not isinstance(data, dict)
        or not isinstance(data.get("id"), str)
        or not isinstance(data.get("type"), str)
    ):
        raise BadRequest("The payload is not a Stripe event.", code="invalid_payload")
    return data


async def raw_body(request: Request) -> bytes:
    return await request.body()


@router.post("/webhook", dependencies=[public("verified by its Stripe-Signature")])
def stripe_webhook(
    request: Request, session: DbSession, payload: Annotated[bytes, Depends(raw_body)]
) -> dict[str, Any]:
    secrets = webhook_secrets(request.app.state.settings)
    event = verify(payload, request.headers.get("stripe-signature"), secrets)
    if session.get(StripeEvent, event["id"]) is not None:
        return {"received": True, "duplicate": True}
    try:
        with session.begin_nested():
            stored = minimize_event(event)  # without the customer's personal data
            session.add(StripeEvent(id=event["id"], type=event["type"], payload=stored))
    except IntegrityError:  # the same event delivered twice at once: the other one won
        return {"received": True, "duplicate": True}
    enqueue(session, "stripe.handle_event", {"stripe_event_id": event["id"]})
    return {"received": True, "duplicate": False}
