"""CORS for the routes a browser may call with a publishable key, and for no other route.

A preflight carries no key, so it cannot be checked against one program: it is answered for an
origin that some program allows (``allowed_origins``), and refused otherwise. The request that
follows is checked against its own key's program (``api/access.py``); its answer carries
``Access-Control-Allow-Origin`` so the page's script can read it, errors included.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openpartner.accounts.origins import allowed_origin
from openpartner.core.errors import Forbidden

ALLOWED_HEADERS = "authorization, content-type, idempotency-key, x-api-key"
ORIGINS_TTL_SECONDS = 5.0
"""How long a changed ``allowed_origins`` may take to reach preflights (as keys: KEY_CACHE_TTL)."""


class PublishableCors:
    def __init__(
        self,
        app: ASGIApp,
        paths: Iterable[str],
        load_origins: Callable[[], Awaitable[set[str]]],
    ) -> None:
        self.app = app
        self.paths = frozenset(paths)
        self.load_origins = load_origins
        self._origins: frozenset[str] = frozenset()
        self._expires = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        if origin is None:
            await self.app(scope, receive, send)
            return
        known = await self._known(origin)
        if scope["method"] == "OPTIONS" and "access-control-request-method" in headers:
            await self._preflight(scope, send, origin if known else None)
            return
        if not known:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", origin.encode("latin-1")),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _known(self, origin: str) -> bool:
        now = time.monotonic()
        if now >= self._expires:
            self._origins = frozenset(await self.load_origins())
            self._expires = now + ORIGINS_TTL_SECONDS
        return allowed_origin(origin) in self._origins

    async def _preflight(self, scope: Scope, send: Send, origin: str | None) -> None:
        if origin is None:
            error = Forbidden(
                "This origin is not one of any program's allowed origins.",
                code="origin_not_allowed",
            )
            body = json.dumps(error.problem(instance=scope["path"])).encode()
            headers = [(b"content-type", b"application/problem+json")]
            status = error.status
        else:
            body = b""
            status = 204
            headers = [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", b"POST, OPTIONS"),
                (b"access-control-allow-headers", ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", b"600"),
                (b"vary", b"Origin"),
            ]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
