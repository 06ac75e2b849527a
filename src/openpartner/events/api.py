from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Header, Query, Request

from openpartner.accounts.scopes import get_readable
from openpartner.api.deps import DbSession, EventsRead, EventsWrite, run_committed
from openpartner.api.pagination import Page, paginate
from openpartner.api.responses import FastJSONResponse
from openpartner.commissions import outcome
from openpartner.events import batch
from openpartner.events.fast_path import MAX_KEY_LENGTH, ingest_one
from openpartner.events.models import Event
from openpartner.events.schemas import BatchIn, BatchOut, EventDetailOut, EventIn, EventOut
from openpartner.programs.models import Program
from openpartner.programs.service import program_for

router = APIRouter(prefix="/v1/events", tags=["events"])


@router.post("", status_code=201, response_model=EventOut)
async def create_event(
    body: EventIn,
    request: Request,
    principal: EventsWrite,
    idempotency_key: Annotated[str | None, Header(max_length=MAX_KEY_LENGTH)] = None,
) -> FastJSONResponse:
    """Record one event. A retry with the same key returns the first response
    (``Idempotent-Replayed: true``); the same key with another body is a 409.

    JSON requests are answered by ``events/fast_path.py`` before they reach this route, with
    the same answers."""
    return await ingest_one(request.app.state.events_committer, principal, body, idempotency_key)


@router.post("/batch", response_model=BatchOut)
async def create_events(
    body: BatchIn, request: Request, session: DbSession, principal: EventsWrite
) -> FastJSONResponse:
    """Up to 1,000 events, each with its own ``external_id``; answered per item."""
    programs: dict[str | None, Program] = {}

    def program_of(program_id: str | None) -> Program:
        if program_id not in programs:
            programs[program_id] = program_for(session, principal, program_id)
        return programs[program_id]

    def ingest() -> FastJSONResponse:
        # Built to BatchOut's shape by ingest_batch; returned as a response so that FastAPI
        # does not validate a thousand items again against the model (rendered here, off the
        # event loop).
        return FastJSONResponse(
            batch.ingest_batch(session, program_of, body.events, request.app.state.settings)
        )

    # Ingest and commit in one trip to the thread pool: no connection held between two trips.
    return await run_committed(session, ingest)


@router.get("", response_model=Page[EventOut])
def list_events(
    session: DbSession,
    principal: EventsRead,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    program_id: Annotated[str | None, Query(max_length=32)] = None,
    customer_id: Annotated[str | None, Query(max_length=255)] = None,
    type: Annotated[str | None, Query(max_length=64)] = None,
) -> dict[str, object]:
    stmt = sa.select(Event).where(*principal.filters(Event))
    if program_id:
        stmt = stmt.where(Event.program_id == program_id)
    if customer_id:
        stmt = stmt.where(Event.customer_id == customer_id)
    if type:
        stmt = stmt.where(Event.type == type)
    rows, has_more, next_cursor = paginate(session, stmt, Event.id, limit=limit, cursor=cursor)
    return {"data": [r.response for r in rows], "has_more": has_more, "next_cursor": next_cursor}


@router.get("/{event_id}", response_model=EventDetailOut)
def get_event(event_id: str, session: DbSession, principal: EventsRead) -> dict[str, Any]:
    """The event as ingest answered it, with ``commissions`` as they are now: per partner its
    commission, or the reason it has none (``no_rule`` when no rule was in force at the event's
    time)."""
    event = get_readable(session, principal, Event, event_id)
    return {**event.response, "commissions": outcome.for_event(session, event)}
