"""Middleware for a Python merchant site: the first-party click cookie, set by the site itself.

Safari (ITP) caps cookies written by scripts at 7 days (24 hours on a link-decorated landing) and
cookies set by a CNAME'd or foreign-IP subdomain at 7 days too. A cookie set by the merchant's own
server, on its own domain, is not capped. Add the middleware to the site and:

- **No-redirect flow**: partner links point straight at the site (``https://shop.example/?via=ada``).
  On such a landing the middleware reports the visit to OpenPartner (``POST /v1/clicks``, with a
  secret key, from the server) and sets the cookie OpenPartner returns on the page's response.
- **Redirect flow**: the router sends the visitor to ``https://shop.example/...?cref=clk_...``;
  the middleware sets the same cookie from the site's server, so it outlives the router's own.

Either way the click id also reaches the site's signup handler, which should identify it
server-side: the cookie is a convenience, the identify call is the record. A failing or slow
OpenPartner never breaks the page: the middleware logs and serves the page without a cookie.

ASGI (Starlette, FastAPI, Django ASGI...)::

    app = OpenPartnerASGI(app, Tracking(api_url="https://op.example", api_key="op_sk_..."))

WSGI (Flask, Django...)::

    app.wsgi_app = OpenPartnerWSGI(app.wsgi_app, Tracking(api_url=..., api_key=...))
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from wsgiref.util import request_uri

import httpx

from openpartner.router.target import client_ip, cookie_header

log = logging.getLogger(__name__)

_CLICK_ID = re.compile(r"^clk_[0-9A-HJKMNP-TV-Z]{26}$")
_LINK_KEY = re.compile(r"^[A-Za-z0-9_-]{3,64}$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


@dataclass(frozen=True)
class Tracking:
    api_url: str
    """Where the OpenPartner API answers, e.g. ``https://partners-api.shop.example``."""
    api_key: str
    """A secret key (``op_sk_…``) with the ``events:write`` scope. Server-side only."""
    via_param: str = "via"
    click_param: str = "cref"
    cookie_name: str = "_cref"
    cookie_domain: str | None = None
    """For the redirect flow's cookie (the no-redirect flow uses the program's settings)."""
    cookie_days: int = 60
    secure: bool = True
    """Leave on in production; off only for plain-HTTP local development."""
    timeout: float = 2.0
    trusted_proxies: frozenset[str] = field(default_factory=frozenset)
    """Peers (your load balancer) whose ``X-Forwarded-For`` gives the visitor's address."""

    def plan(self, query: str) -> tuple[str | None, str | None]:
        """``(link_key, click_id)`` found in a landing's query string; each None if absent."""
        if self.via_param not in query and self.click_param not in query:
            return None, None
        values = parse_qs(query)
        key = next(iter(values.get(self.via_param, [])), None)
        click = next(iter(values.get(self.click_param, [])), None)
        return (
            key if key and _LINK_KEY.match(key) else None,
            click if click and _CLICK_ID.match(click) else None,
        )

    def body(
        self, link_key: str, landing: str, ip: str, user_agent: str | None, referer: str | None
    ) -> dict[str, Any]:
        return {
            "link_key": link_key,
            "landing_url": landing[:2048],
            "ip": ip,
            "user_agent": (user_agent or "")[:1024],
            "referer": referer[:2048] if referer else None,
        }

    def cookie_from(self, response: httpx.Response) -> str | None:
        if response.status_code != 201:
            log.warning(
                "OpenPartner refused the click (%s): %s", response.status_code, response.text
            )
            return None
        value: str = response.json()["set_cookie"]
        return value if self.secure else value.replace("; Secure", "")

    def cookie_for(self, click_id: str) -> str:
        return cookie_header(
            self.cookie_name,
            click_id,
            domain=self.cookie_domain,
            max_age_days=self.cookie_days,
            secure=self.secure,
        )

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


class OpenPartnerASGI:
    def __init__(
        self,
        app: ASGIApp,
        tracking: Tracking,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.app = app
        self.tracking = tracking
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        link_key, click_id = self.tracking.plan(scope["query_string"].decode("latin-1"))
        cookie = None
        if link_key is not None:
            cookie = await self._register(scope, link_key)
        elif click_id is not None:
            cookie = self.tracking.cookie_for(click_id)
        if cookie is None:
            await self.app(scope, receive, send)
            return
        encoded = cookie.encode("latin-1")

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", encoded))
                if not any(name.lower() == b"referrer-policy" for name, _ in headers):
                    # The landing URL carries the click id: send third parties only the origin.
                    headers.append((b"referrer-policy", b"strict-origin-when-cross-origin"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_cookie)

    async def _register(self, scope: Scope, link_key: str) -> str | None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        query = scope["query_string"].decode("latin-1")
        landing = f"{scope.get('scheme', 'https')}://{host}{scope.get('root_path', '')}"
        landing += scope["path"] + (f"?{query}" if query else "")
        forwarded = headers.get("x-forwarded-for")
        peer = scope["client"][0] if scope.get("client") else ""
        ip = client_ip(
            peer, forwarded.encode() if forwarded else None, self.tracking.trusted_proxies
        )
        body = self.tracking.body(
            link_key, landing, ip, headers.get("user-agent"), headers.get("referer")
        )
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.tracking.api_url,
                timeout=self.tracking.timeout,
                transport=self._transport,
            )
        try:
            response = await self._client.post(
                "/v1/clicks", json=body, headers=self.tracking.headers
            )
            return self.tracking.cookie_from(response)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("could not register the click with OpenPartner: %s", exc)
            return None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()


class OpenPartnerWSGI:
    def __init__(
        self, app: WSGIApp, tracking: Tracking, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.app = app
        self.tracking = tracking
        self._client = httpx.Client(
            base_url=tracking.api_url, timeout=tracking.timeout, transport=transport
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        link_key, click_id = self.tracking.plan(environ.get("QUERY_STRING", ""))
        cookie = None
        if link_key is not None:
            cookie = self._register(environ, link_key)
        elif click_id is not None:
            cookie = self.tracking.cookie_for(click_id)
        if cookie is None:
            return self.app(environ, start_response)

        def start_with_cookie(status: str, headers: list[tuple[str, str]], *exc: Any) -> Any:
            headers = [*headers, ("Set-Cookie", cookie)]
            if not any(name.lower() == "referrer-policy" for name, _ in headers):
                headers.append(("Referrer-Policy", "strict-origin-when-cross-origin"))
            return start_response(status, headers, *exc)

        return self.app(environ, start_with_cookie)

    def _register(self, environ: dict[str, Any], link_key: str) -> str | None:
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        ip = client_ip(
            environ.get("REMOTE_ADDR", ""),
            forwarded.encode() if forwarded else None,
            self.tracking.trusted_proxies,
        )
        body = self.tracking.body(
            link_key,
            request_uri(environ),
            ip,
            environ.get("HTTP_USER_AGENT"),
            environ.get("HTTP_REFERER"),
        )
        try:
            response = self._client.post("/v1/clicks", json=body, headers=self.tracking.headers)
            return self.tracking.cookie_from(response)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            log.warning("could not register the click with OpenPartner: %s", exc)
            return None

    def close(self) -> None:
        self._client.close()
