"""``POST /v1/events`` served without FastAPI's routing and dependency solving.

It is the hottest route of the API (every conversion of every merchant), and FastAPI's own
work per request, matching the route, solving the key and body dependencies, wrapping the
endpoint, costs several times what a bare ASGI function does: measured with nothing behind it,
0.33 ms of server CPU per request against 0.07 ms (docs/benchmarks.md, ingest, "The floor").
So this middleware answers that one route itself, with the same parts: the key through
:func:`~openpartner.api.deps.get_principal`, the body validated as ``EventIn`` as FastAPI
validates it (JSON decoded, then the model, errors located under ``body``), errors rendered by
:mod:`openpartner.api.errors`, the event ingested by the group committer.

Paths, query strings and the depth of the JSON are checked before this runs, by
``api/limits.py``'s ``InputGuard``, for this route and every other alike.

The route stays declared in ``events/api.py``: it is what the OpenAPI document shows, it serves
a body sent with a content type other than JSON or in no Unicode encoding (FastAPI's rules for
those are not worth copying), and tests hold the two to the same answers.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from openpartner.accounts.scopes import Principal
from openpartner.api.access import check
from openpartner.api.deps import EVENTS_WRITE, get_principal
from openpartner.api.errors import database_problem, problem_response, validation_problem
from openpartner.api.limits import is_json, replay
from openpartner.api.responses import FastJSONResponse
from openpartner.core.errors import OpenPartnerError
from openpartner.events import service
from openpartner.events.group_commit import GroupCommitter
from openpartner.events.schemas import EventIn

PATH = "/v1/events"
MAX_KEY_LENGTH = 255
_EVENT_IN: TypeAdapter[EventIn] = TypeAdapter(EventIn)


class EventsFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not (
            scope["type"] == "http"
            and scope["path"] == PATH
            and scope["method"] == "POST"
            and is_json(scope)
        ):
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await _create_event(request)
        except OpenPartnerError as exc:
            response = problem_response(exc, request)
        except (IntegrityError, OperationalError) as exc:
            response = problem_response(database_problem(exc, PATH), request)
        except _NotJson as exc:
            # Rare enough to leave to FastAPI, with the body it would have read.
            await self.app(scope, replay(exc.body), send)
            return
        await response(scope, receive, send)


async def ingest_one(
    committer: GroupCommitter, principal: Principal, body: EventIn, header_key: str | None
) -> FastJSONResponse:
    """The route's work once the key and the body are known (shared with ``events/api.py``)."""
    key = service.idempotency_key(body, header_key)
    # Committed together with the events of concurrent requests (group_commit).
    done = await committer.ingest(principal, body, key)
    headers = {"Idempotent-Replayed": "true"} if done.replayed else {}
    return FastJSONResponse(done.response, status_code=201, headers=headers)


async def _create_event(request: Request) -> Response:
    # In FastAPI's order: the key's dependency first, then the header and body together.
    principal = await get_principal(request)
    check(EVENTS_WRITE, principal, request.headers.get("origin"))
    errors: list[dict[str, Any]] = []
    header_key = request.headers.get("idempotency-key")
    if header_key is not None and len(header_key) > MAX_KEY_LENGTH:
        errors.append(
            {
                "loc": ("header", "idempotency-key"),
                "msg": f"String should have at most {MAX_KEY_LENGTH} characters",
                "type": "string_too_long",
            }
        )
    body: EventIn | None = None
    raw = await request.body()
    if not raw:
        errors.append({"loc": ("body",), "msg": "Field required", "type": "missing"})
    else:
        try:
            decoded = json.loads(raw)
        except json.JSONDecodeError as exc:
            errors.append(
                {"loc": ("body", exc.pos), "msg": "JSON decode error", "type": "json_invalid"}
            )
        except ValueError as exc:  # not UTF-8 (or -16, -32) at all
            raise _NotJson(raw) from exc
        else:
            try:
                # As FastAPI does: anything but an object is a ``model_attributes_type``.
                body = _EVENT_IN.validate_python(decoded, from_attributes=True)
            except ValidationError as exc:
                errors.extend({**e, "loc": ("body", *e["loc"])} for e in exc.errors())
    if errors or body is None:
        raise validation_problem(errors)
    return await ingest_one(request.app.state.events_committer, principal, body, header_key)


class _NotJson(Exception):
    def __init__(self, body: bytes) -> None:
        self.body = body
