"""The HTTP side: authentication, faults, idempotency keys, routing, Stripe's response headers.

One request, in order: Bearer secret key (401 otherwise) → an injected fault → for a POST with an
``Idempotency-Key``, replay the saved result (same endpoint and parameters, with
``Idempotent-Replayed: true``) or refuse a reuse with other parameters (400
``idempotency_error``) → execute and save the result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tests.stripe_server import connect, errors
from tests.stripe_server.errors import StripeApiError
from tests.stripe_server.faults import Fault
from tests.stripe_server.forms import FormError, parse_form
from tests.stripe_server.routes import Call, resolve
from tests.stripe_server.shapes import new_id
from tests.stripe_server.store import RequestInfo

if TYPE_CHECKING:
    from tests.stripe_server.server import StripeServer


@dataclass(frozen=True)
class Saved:
    """A result kept under an idempotency key."""

    method: str
    path: str
    params: dict[str, Any]
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class RecordedRequest:
    method: str
    path: str
    params: dict[str, Any]
    idempotency_key: str | None
    stripe_account: str | None
    status: int = 0
    replayed: bool = False
    fault: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    control: StripeServer


class Handler(BaseHTTPRequestHandler):
    server: HTTPServer
    # HTTP/1.0: one request per connection, so a withheld or dropped response never leaves a
    # half-used keep-alive connection in the client's pool.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests read ``StripeServer.requests`` instead

    def _handle(self, method: str) -> None:
        control = self.server.control
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        if method == "GET" and url.path.startswith("/setup/s/"):
            self._onboarding(url.path)
            return
        key = self.headers.get("Idempotency-Key") if method == "POST" else None
        record = RecordedRequest(
            method,
            url.path,
            {},
            key,
            self.headers.get("Stripe-Account"),
            headers=dict(self.headers),
        )
        control.requests.append(record)
        fault: Fault | None = None
        try:
            record.params = parse_form(body if method == "POST" else url.query)
            self._authenticate(control.secret_key)
            fault = control.faults.take(method, url.path)
            record.fault = fault.kind if fault else None
            status, payload, headers = self._execute(method, url.path, record, fault)
        except FormError as exc:
            status, payload, headers = 400, errors.invalid("", str(exc), None).body(), {}
        except StripeApiError as exc:
            status, payload, headers = exc.status, exc.body(), dict(exc.headers)
        record.status = status
        if fault is not None and fault.loses_response:
            if fault.kind == "timeout_after_create":
                control.faults.released.wait(fault.hold_seconds)
            self.close_connection = True  # nothing written: the client sees no response
            return
        self._send(status, payload, headers)

    def _execute(
        self, method: str, path: str, record: RecordedRequest, fault: Fault | None
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        control = self.server.control
        store = control.store
        refusal = fault.error() if fault else None
        if refusal is not None and not refusal.saved:
            raise refusal  # refused in front of the API: not executed, nothing saved
        request_id = new_id("req", 14)
        headers = {"Request-Id": request_id}
        with store.lock:  # check, execute and save an idempotency key atomically
            scope = (record.stripe_account, record.idempotency_key)
            saved = control.idempotency.get(scope) if record.idempotency_key else None
            if saved is not None and record.idempotency_key is not None:
                if (saved.method, saved.path) != (method, path):
                    raise errors.idempotency_other_endpoint(record.idempotency_key)
                if saved.params != record.params:
                    raise errors.idempotency_mismatch(record.idempotency_key)
                record.replayed = True
                return saved.status, saved.body, {**saved.headers, "Idempotent-Replayed": "true"}
            try:
                if refusal is not None:
                    raise refusal
                handler, ids = resolve(method, path)
                info = RequestInfo(request_id, record.idempotency_key)
                call = Call(store, record.params, ids, info, control.url)
                status, body = 200, handler(call)
            except StripeApiError as exc:
                if not exc.saved or record.idempotency_key is None:
                    raise
                status, body = exc.status, exc.body()
                headers.update(exc.headers)
            if record.idempotency_key is not None:
                headers["Idempotency-Key"] = record.idempotency_key
                control.idempotency[scope] = Saved(
                    method, path, record.params, status, body, dict(headers)
                )
        return status, body, headers

    def _authenticate(self, secret_key: str) -> None:
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise StripeApiError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
                saved=False,
            )
        if auth[7:].strip() != secret_key:
            shown = auth[7:].strip()[-4:]
            raise StripeApiError(401, f"Invalid API Key provided: sk_test_****{shown}", saved=False)

    def _onboarding(self, path: str) -> None:
        """The page an account link opens: completing it makes the account ready."""
        token = path.rstrip("/").rsplit("/", 1)[-1]
        store = self.server.control.store
        with store.lock:
            if token not in store.onboarding:
                self._send_text(404, "This account link has expired or was already used.")
                return
            return_url = connect.complete_onboarding(store, token)
        if return_url:
            self.send_response(302)
            self.send_header("Location", return_url)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send_text(200, "Onboarding complete.")

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        version = self.headers.get("Stripe-Version")
        if version:
            self.send_header("Stripe-Version", version)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_text(self, status: int, text: str) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
