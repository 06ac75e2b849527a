"""The two apps ``floor.py`` serves: ``POST /v1/events`` doing only what any ingest must do
before touching a database, i.e. read the body and validate it as the real ``EventIn``, then
answer ``201`` with a constant. ``fastapi_app`` is the framework the API uses; ``asgi_app`` is
no framework at all, the least a Python server behind uvicorn can do per request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import FastAPI, Header
from pydantic import TypeAdapter, ValidationError

from openpartner.api.responses import FastJSONResponse
from openpartner.events.schemas import EventIn

ANSWER = {"id": "evt_floor", "object": "event", "attributed_to": []}
_ANSWER_BYTES = b'{"id":"evt_floor","object":"event","attributed_to":[]}'
_EVENT_IN: TypeAdapter[EventIn] = TypeAdapter(EventIn)

fastapi_app = FastAPI()


@fastapi_app.post("/v1/events", status_code=201)
async def create_event(
    body: EventIn, idempotency_key: Annotated[str | None, Header(max_length=255)] = None
) -> FastJSONResponse:
    return FastJSONResponse(ANSWER, status_code=201)


async def asgi_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":  # lifespan: nothing to set up
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    try:
        _EVENT_IN.validate_json(body)
        status, answer = 201, _ANSWER_BYTES
    except ValidationError:
        status, answer = 422, b'{"code":"validation_error"}'
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": answer})
