"""Faults a test injects into the next matching requests.

- ``http_500`` / ``http_429``: refused in front of the API (a load balancer, the rate limiter);
  nothing executes and nothing is saved under the idempotency key, so a retry with the same key
  executes normally. ``http_429`` can carry a ``Retry-After`` header.
- ``permanent_error``: Stripe executes the request and refuses it (default 400
  ``account_invalid``); like any executed result it is saved under the idempotency key.
- ``timeout_after_create``: the request executes (the transfer exists, its result is saved under
  the idempotency key), then the response is withheld until the client gives up, and the
  connection is closed: the client sees a timeout.
- ``drop_after_create``: the same, but the connection is closed at once: a network error.
"""

from __future__ import annotations

import fnmatch
import threading
from dataclasses import dataclass
from typing import Literal

from tests.stripe_server import errors
from tests.stripe_server.errors import StripeApiError

FaultKind = Literal[
    "http_500", "http_429", "permanent_error", "timeout_after_create", "drop_after_create"
]


@dataclass
class Fault:
    kind: FaultKind
    method: str | None
    path: str | None
    """``fnmatch`` pattern on the path, e.g. ``/v1/transfers`` or ``/v1/transfers/*/reversals``."""
    times: int
    retry_after: int | None = None
    status: int = 400
    code: str = "account_invalid"
    message: str = "The account is not valid for this request."
    param: str | None = None
    hold_seconds: float = 30.0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or fnmatch.fnmatchcase(path, self.path)
        )

    def error(self) -> StripeApiError | None:
        """The error this fault answers with before or instead of executing, if any."""
        if self.kind == "http_500":
            return errors.server_error()
        if self.kind == "http_429":
            return errors.rate_limited(self.retry_after)
        if self.kind == "permanent_error":
            return StripeApiError(self.status, self.message, code=self.code, param=self.param)
        return None

    @property
    def loses_response(self) -> bool:
        return self.kind in ("timeout_after_create", "drop_after_create")


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[Fault] = []
        self.released = threading.Event()
        """Set to end every withheld response at once (server reset or stop)."""

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._pending.append(fault)
        return fault

    def take(self, method: str, path: str) -> Fault | None:
        """The first pending fault matching this request, consumed once."""
        with self._lock:
            for fault in self._pending:
                if fault.matches(method, path):
                    fault.hits += 1
                    if fault.hits >= fault.times:
                        self._pending.remove(fault)
                    return fault
        return None

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()
        self.released.set()
        self.released = threading.Event()
