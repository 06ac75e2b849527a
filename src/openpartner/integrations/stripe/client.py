"""The one place OpenPartner builds a Stripe client, and how it reads Stripe's failures.

Every Stripe call goes through :func:`stripe_client`: the official library, the secret key and
base URL from settings (tests point ``STRIPE_API_BASE`` at a local Stripe-compatible server), a
short timeout, and **no automatic retries** — the caller retries itself, with the same idempotency
key, after recording its intent, so a retry can never create a second transfer.

:func:`classify` sorts a failed call into

- ``ambiguous``: the call may or may not have taken effect (timeout, connection error, 5xx, 409,
  429, idempotency-key misuse). Retry later with the *same* idempotency key, or reconcile
  (e.g. list transfers by ``transfer_group``); never release what the call was paying for.
- ``permanent``: Stripe refused the request (any other 4xx); it had no effect and retrying the
  same request cannot succeed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import stripe

from openpartner.core.errors import ServiceUnavailable
from openpartner.settings import Settings

Outcome = Literal["ambiguous", "permanent"]


class StripeNotConfigured(ServiceUnavailable):
    default_code = "stripe_not_configured"


def is_configured(settings: Settings) -> bool:
    key = settings.stripe_secret_key
    return key is not None and bool(key.get_secret_value().strip())


def stripe_client(settings: Settings) -> stripe.StripeClient:
    """A ``StripeClient`` for the configured account; raises when no secret key is set."""
    if not is_configured(settings):
        raise StripeNotConfigured("Stripe is not configured: set STRIPE_SECRET_KEY.")
    assert settings.stripe_secret_key is not None
    return stripe.StripeClient(
        settings.stripe_secret_key.get_secret_value().strip(),
        base_addresses={"api": settings.stripe_api_base.rstrip("/")},
        # Retries belong to the caller, which owns the idempotency key and the recorded intent.
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=settings.stripe_timeout_seconds),
    )


def webhook_secrets(settings: Settings) -> list[str]:
    """Signing secrets of the Stripe webhook endpoints, current first (comma-separated)."""
    if settings.stripe_webhook_secrets is None:
        return []
    raw = settings.stripe_webhook_secrets.get_secret_value()
    return [part.strip() for part in raw.split(",") if part.strip()]


def verify_event(payload: bytes, signature_header: str, secrets: list[str]) -> stripe.Event:
    """The verified event, or ``SignatureVerificationError`` when no secret signed it.

    Several secrets are tried so an endpoint secret can be rotated without dropping events.
    Raises :class:`StripeNotConfigured` when there is no secret at all.
    """
    if not secrets:
        raise StripeNotConfigured("Stripe webhooks are not configured: set STRIPE_WEBHOOK_SECRETS.")
    error: stripe.SignatureVerificationError | None = None
    for secret in secrets:
        try:
            event: stripe.Event = stripe.Webhook.construct_event(payload, signature_header, secret)
            return event
        except stripe.SignatureVerificationError as exc:
            error = exc
    assert error is not None
    raise error


@dataclass(frozen=True, slots=True)
class StripeFailure:
    outcome: Outcome
    status: int | None
    code: str | None
    message: str
    retry_after: float | None
    """Seconds Stripe asked us to wait (``Retry-After``), if it said."""

    @property
    def ambiguous(self) -> bool:
        return self.outcome == "ambiguous"


def classify(error: stripe.StripeError) -> StripeFailure:
    status = error.http_status
    if isinstance(error, stripe.APIConnectionError) or status is None:
        # Timeout or dropped connection: the request may have been executed.
        outcome: Outcome = "ambiguous"
    elif isinstance(error, stripe.IdempotencyError):
        # The key was already used with other parameters: whatever that first request did
        # stands, so this must be reconciled, never treated as "nothing happened".
        outcome = "ambiguous"
    elif status >= 500 or status in (409, 429):
        outcome = "ambiguous"
    else:
        outcome = "permanent"
    return StripeFailure(
        outcome=outcome,
        status=status,
        # Some subclasses (RateLimitError) leave ``code`` unset; the parsed body still has it.
        code=error.code or (error.error.code if error.error is not None else None),
        message=str(error.user_message or error),
        retry_after=_retry_after(error),
    )


def _retry_after(error: stripe.StripeError) -> float | None:
    headers = error.headers or {}
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare enough to fall back to the caller's backoff
    return max(seconds, 0.0)
