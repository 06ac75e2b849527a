"""Stripe: the client seam (:mod:`.client`). Webhooks and Connect payouts build on it."""

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
