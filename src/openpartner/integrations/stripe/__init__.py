"""Stripe: the client seam (:mod:`.client`), webhooks in (:mod:`.webhook`, :mod:`.tasks`) and
Connect transfers out (payouts)."""

from openpartner.integrations.stripe.client import (
    StripeFailure,
    StripeNotConfigured,
    classify,
    is_configured,
    stripe_client,
    verify_event,
    webhook_secrets,
)

__all__ = [
    "StripeFailure",
    "StripeNotConfigured",
    "classify",
    "is_configured",
    "stripe_client",
    "verify_event",
    "webhook_secrets",
]
