"""Webhook payloads signed like Stripe's, for the product to verify with ``stripe.Webhook``.

Stripe sends ``Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<payload>">`` keyed
with the endpoint's signing secret (``whsec_…``, used as-is). ``signed_event`` returns the exact
bytes and headers; ``deliver`` POSTs them to a URL or to anything with a ``post`` method shaped
like ``httpx.Client.post`` (a FastAPI ``TestClient``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from tests.stripe_server.shapes import Obj


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    signed = f"{t}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={t},v1={digest}"


@dataclass(frozen=True)
class SignedEvent:
    event: Obj
    payload: bytes
    headers: dict[str, str]

    @property
    def signature(self) -> str:
        return self.headers["Stripe-Signature"]


def signed_event(event: Obj, secret: str, *, timestamp: int | None = None) -> SignedEvent:
    """``timestamp`` defaults to now; pass an old one to test the tolerance window."""
    payload = json.dumps(event, indent=2).encode()  # Stripe sends pretty-printed JSON
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature_header(payload, secret, timestamp),
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    return SignedEvent(event, payload, headers)


class Response(Protocol):
    """What ``deliver`` returns: an httpx response (Starlette's TestClient uses httpx2)."""

    status_code: int

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


class Poster(Protocol):
    def post(self, url: str, *, content: bytes, headers: dict[str, str]) -> Response: ...


def deliver(signed: SignedEvent, target: str | Poster, path: str = "") -> Response:
    """POST the signed event to ``target + path`` (a URL) or ``target.post(path)``."""
    if isinstance(target, str):
        return httpx.post(target + path, content=signed.payload, headers=signed.headers)
    return target.post(path, content=signed.payload, headers=signed.headers)
