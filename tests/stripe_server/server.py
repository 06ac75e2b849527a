"""``StripeServer``: the local Stripe-compatible server and the control panel tests drive it with.

The product reaches it only through the official ``stripe`` library (``configure(settings)``
points ``STRIPE_API_BASE`` here); tests use the Python methods below to look inside, inject faults
and cause what Stripe would cause on its own (onboarding finished, a transfer reversed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from pydantic import SecretStr

from openpartner.settings import Settings
from tests.stripe_server import connect, transfers
from tests.stripe_server.faults import Fault, FaultKind, Faults
from tests.stripe_server.handler import Handler, HTTPServer, RecordedRequest, Saved
from tests.stripe_server.shapes import Obj, Shapes, default_shapes
from tests.stripe_server.store import RequestInfo, Store, public
from tests.stripe_server.webhooks import Poster, Response, SignedEvent, deliver, signed_event


class StripeServer:
    secret_key = "sk_test_openpartner_local"
    webhook_secret = "whsec_openpartner_local_test_secret"

    def __init__(self, shapes: Shapes | None = None, now: Callable[[], int] | None = None) -> None:
        self.shapes = shapes or default_shapes()
        self._now = now
        self.store = Store(self.shapes, now)
        self.faults = Faults()
        self.idempotency: dict[tuple[str | None, str | None], Saved] = {}
        self.requests: list[RecordedRequest] = []
        """Every API request received, oldest first (method, path, params, key, status...)."""
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> StripeServer:
        httpd = HTTPServer(("127.0.0.1", 0), Handler)
        httpd.control = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.faults.clear()  # ends withheld responses
        if self._httpd is not None and self._thread is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join()
        self._httpd = self._thread = None

    def reset(self) -> None:
        """Forget everything: objects, events, keys, requests, faults, balances."""
        self.faults.clear()
        with self.store.lock:
            self.store = Store(self.shapes, self._now)
            self.idempotency.clear()
            self.requests.clear()

    def __enter__(self) -> StripeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the Stripe server is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def configure(self, settings: Settings, *, timeout: float = 5.0) -> Settings:
        """``settings`` with the product's Stripe options pointing here."""
        return settings.model_copy(
            update={
                "stripe_secret_key": SecretStr(self.secret_key),
                "stripe_api_base": self.url,
                "stripe_webhook_secrets": SecretStr(self.webhook_secret),
                "stripe_timeout_seconds": timeout,
            }
        )

    # -- looking inside ----------------------------------------------------------------------

    def transfers(self) -> list[Obj]:
        """Every transfer that exists, oldest first — the truth after a lost response."""
        with self.store.lock:
            return [public(t) for t in self.store.transfers.values()]

    def accounts(self) -> list[Obj]:
        with self.store.lock:
            return [public(a) for a in self.store.accounts.values()]

    def events(self, type: str | None = None) -> list[Obj]:
        with self.store.lock:
            return [public(e) for e in self.store.events.values() if type in (None, e["type"])]

    def balance(self, currency: str = "usd") -> int:
        with self.store.lock:
            return self.store.available(currency.lower())

    # -- causing things ----------------------------------------------------------------------

    def fail_next(
        self,
        kind: FaultKind,
        *,
        path: str | None = None,
        method: str | None = "POST",
        times: int = 1,
        **options: Any,
    ) -> Fault:
        """Fail the next ``times`` requests matching ``method`` and ``path`` (fnmatch pattern).

        Options: ``retry_after`` (429), ``status``/``code``/``message``/``param``
        (permanent_error), ``hold_seconds`` (timeout_after_create). See ``faults``.
        """
        return self.faults.add(Fault(kind, method, path, times, **options))

    def set_balance(self, currency: str, amount: int) -> None:
        with self.store.lock:
            self.store.balances[currency.lower()] = amount

    def create_account(self, *, ready: bool = True, **fields: Any) -> Obj:
        """A connected account made without the API (express, transfers requested)."""
        query: dict[str, Any] = {
            "type": "express",
            "capabilities": {"transfers": {"requested": "true"}},
            **fields,
        }
        with self.store.lock:
            account = connect.create_account(self.store, query)
            if ready:
                connect.set_ready(self.store, account["id"], True, None)
            return public(self.store.accounts[account["id"]])

    def mark_account_ready(self, account_id: str) -> Obj:
        """Onboarding finished: capabilities active, payouts on. Returns ``account.updated``."""
        with self.store.lock:
            return connect.set_ready(self.store, account_id, True, None)

    def restrict_account(self, account_id: str, reason: str = "requirements.past_due") -> Obj:
        """Stripe disabled the account (transfers inactive). Returns ``account.updated``."""
        with self.store.lock:
            return connect.set_ready(self.store, account_id, False, reason)

    def reverse_transfer(self, transfer_id: str, amount: int | None = None) -> Obj:
        """A reversal made outside the product (dashboard). Returns ``transfer.reversed``."""
        query = {} if amount is None else {"amount": str(amount)}
        with self.store.lock:
            _, event = transfers.create_reversal(self.store, transfer_id, query, RequestInfo())
        return event

    # -- webhooks ----------------------------------------------------------------------------

    def sign(self, event: Obj, *, timestamp: int | None = None) -> SignedEvent:
        return signed_event(event, self.webhook_secret, timestamp=timestamp)

    def deliver(self, event: Obj, target: str | Poster, path: str = "") -> Response:
        """Sign ``event`` with ``webhook_secret`` and POST it, as Stripe delivers webhooks."""
        return deliver(self.sign(event), target, path)
