"""A local Stripe-compatible HTTP server for the tests, driven through the official library.

    def test_payout(stripe_server: StripeServer, stripe_settings: Settings) -> None:
        account = stripe_server.create_account(ready=True)
        stripe_server.fail_next("timeout_after_create", path="/v1/transfers")
        ...  # the product calls Stripe through openpartner.integrations.stripe
        assert len(stripe_server.transfers()) == 1

See ``server.StripeServer`` (control), ``faults`` (fault kinds), ``objects`` (webhook payloads),
``webhooks`` (signing) and docs/stripe.md.
"""

from tests.stripe_server.faults import Fault, FaultKind
from tests.stripe_server.handler import RecordedRequest
from tests.stripe_server.objects import (
    make_charge,
    make_checkout_session,
    make_customer,
    make_discount,
    make_event,
    make_invoice,
    make_promotion_code,
)
from tests.stripe_server.server import StripeServer
from tests.stripe_server.shapes import FIXTURES_PATH, Shapes, default_shapes
from tests.stripe_server.webhooks import SignedEvent, deliver, signature_header, signed_event

__all__ = [
    "FIXTURES_PATH",
    "Fault",
    "FaultKind",
    "RecordedRequest",
    "Shapes",
    "SignedEvent",
    "StripeServer",
    "default_shapes",
    "deliver",
    "make_charge",
    "make_checkout_session",
    "make_customer",
    "make_discount",
    "make_event",
    "make_invoice",
    "make_promotion_code",
    "signature_header",
    "signed_event",
]
