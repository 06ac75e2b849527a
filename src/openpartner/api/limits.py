"""Pure-ASGI guards that refuse what no route should see, before anything parses it: oversize
bodies (:class:`BodyLimit`), and control characters in a path or query string or JSON nested too
deeply for a parser's stack (:class:`InputGuard`)."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openpartner.core.errors import OpenPartnerError, PayloadTooLarge, ValidationFailed
from openpartner.core.text import bad_character

MAX_BODY_DEPTH = 64
"""Deepest nesting of a JSON request body: far below where a recursive parser fails (Python's
``json`` raised RecursionError at about 1,000 levels), above what a valid body needs (a field's
value may nest :data:`~openpartner.api.schemas.MAX_DEPTH` levels)."""
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')
_CONTROL_BYTE = re.compile(rb"[\x00-\x1f]")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._reject(scope, send)
            return
        seen = 0
        too_large = False

        async def limited_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    too_large = True
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLarge:
            await self._reject(scope, send)

    async def _reject(self, scope: Scope, send: Send) -> None:
        error = PayloadTooLarge(f"The request body exceeds {self.max_bytes} bytes.")
        await send_problem(scope, send, error)


class InputGuard:
    """One check of a request's path, query string and JSON body for every route (the events
    fast path included, so both answer alike); request bodies' fields are checked by
    ``RequestModel``. Runs inside :class:`BodyLimit`, so the body it reads is bounded."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        error = _bad_target(scope)
        if error is None and scope["method"] in ("POST", "PUT", "PATCH") and is_json(scope):
            body = await _read_body(receive)
            if body is None:  # the client left
                return
            error = _too_deep(body)
            receive = replay(body)
        if error is not None:
            await send_problem(scope, send, error)
            return
        await self.app(scope, receive, send)


def _bad_target(scope: Scope) -> OpenPartnerError | None:
    """A path or query string with a control character (none is allowed in either)."""
    bad = bad_character(scope["path"])
    if bad:
        return _control(["path"], f"The path holds the character {bad}.")
    query = unquote_to_bytes(scope.get("query_string", b"").replace(b"+", b" "))
    found = _CONTROL_BYTE.search(query)
    if found:
        code = f"U+{found.group()[0]:04X}"
        return _control(["query"], f"The query string holds the character {code}.")
    return None


def _control(loc: list[str], detail: str) -> ValidationFailed:
    return ValidationFailed(
        detail,
        code="control_character",
        errors=[{"loc": loc, "msg": detail, "type": "control_character"}],
    )


def _too_deep(body: bytes) -> OpenPartnerError | None:
    # Cheap on the common body: fewer openers than the limit cannot nest deeper than it.
    if body.count(b"[") + body.count(b"{") <= MAX_BODY_DEPTH:
        return None
    depth = 0
    for token in _JSON_TOKENS.finditer(body):
        opener = token.group()
        if opener in (b"[", b"{"):
            depth += 1
            if depth > MAX_BODY_DEPTH:
                detail = f"The body is nested deeper than {MAX_BODY_DEPTH} levels."
                return ValidationFailed(
                    detail,
                    code="nesting_too_deep",
                    errors=[{"loc": ["body"], "msg": detail, "type": "nesting_too_deep"}],
                )
        elif opener in (b"]", b"}"):
            depth -= 1
    return None


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def replay(body: bytes) -> Receive:
    """A ``receive`` that hands the app a body already read."""

    async def receive() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


def is_json(scope: Scope) -> bool:
    """No content type, or a JSON one: what FastAPI decodes as JSON."""
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or (
                media.startswith(b"application/") and media.endswith(b"+json")
            )
    return True


async def send_problem(scope: Scope, send: Send, error: OpenPartnerError) -> None:
    """``error`` as problem+json, from outside the app (no exception handlers here)."""
    body = json.dumps(error.problem(instance=_instance(scope))).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in error.headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _instance(scope: Scope) -> Any:
    path = scope.get("path")
    # The path goes back in the answer: not one holding what was refused in it.
    return None if path is None or bad_character(path) else path


class _TooLarge(Exception):
    pass
