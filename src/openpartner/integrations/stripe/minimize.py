"""What is kept of a Stripe event: only what attribution and payouts read.

Stripe's objects carry the customer's personal data (email, name, phone, postal addresses, card
details, IP address). None of it is needed to attribute a sale or pay a partner, so a verified
event is stored without it: every field named in ``PERSONAL_FIELDS`` is removed at any depth,
and ``metadata`` keeps only our own ``openpartner_*`` keys (the rest is whatever the merchant put
there). The one personal value identity uses, the customer's email, is kept as its keyed hash
(``email_hash``, the same HMAC identify stores), never in clear.
"""

from __future__ import annotations

from typing import Any, Final

from openpartner.identity.service import email_hash

PERSONAL_FIELDS: Final = frozenset(
    {
        # people and their contact details
        "address",
        "billing_details",
        "business_name",
        "customer_address",
        "customer_details",
        "customer_email",
        "customer_name",
        "customer_phone",
        "customer_shipping",
        "customer_tax_ids",
        "dob",
        "email",
        "first_name",
        "individual",
        "individual_name",
        "last_name",
        "name",
        "phone",
        "receipt_email",
        "shipping",
        "shipping_address",
        "shipping_details",
        "support_address",
        "support_email",
        "support_phone",
        "tax_id",
        "tax_ids",
        "verified_address",
        "verified_email",
        "verified_name",
        "verified_phone",
        # payment instruments and devices
        "fingerprint",
        "ip",
        "ip_address",
        "last4",
        "payment_method_details",
        # free text a merchant or customer may fill with anything
        "description",
    }
)
OUR_METADATA_PREFIX: Final = "openpartner_"


def customer_email(obj: dict[str, Any]) -> str | None:
    """The email identity records for the event's object: a customer's own, or the one a
    checkout collected."""
    email = obj.get("email") if obj.get("object") == "customer" else None
    if email is None:
        email = (obj.get("customer_details") or {}).get("email")
    return email if isinstance(email, str) and email.strip() else None


def minimize_event(event: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``event`` without personal fields, its object's email as ``email_hash``."""
    kept: dict[str, Any] = _strip(event)
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    if isinstance(obj, dict):
        email = customer_email(obj)
        if email is not None:
            kept["data"]["object"]["email_hash"] = email_hash(email)
    return kept


def _strip(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _metadata(item) if key == "metadata" else _strip(item)
            for key, item in value.items()
            if key not in PERSONAL_FIELDS
        }
    if isinstance(value, list):
        return [_strip(item) for item in value]
    return value


def _metadata(value: Any) -> Any:
    if not isinstance(value, dict):
        return _strip(value)
    return {k: v for k, v in value.items() if k.startswith(OUR_METADATA_PREFIX)}
