"""Batch ingest: up to 1,000 events in one request, answered per item.

Each item is accepted, a duplicate (same key, same body) or rejected with a reason, exactly as
if the items had been sent one by one in order; one bad item never sinks the others. The work is
set-based: runs of events that validate from their body alone go through
:func:`service.ingest_many` together (a few statements for the whole run); a refund or deal sale,
which is validated against the database and may depend on an earlier item, is ingested on its
own at its place in the order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from openpartner.api.errors import validation_problem
from openpartner.core.errors import OpenPartnerError
from openpartner.events import service
from openpartner.events.program_rules import Known
from openpartner.events.schemas import EventIn
from openpartner.programs.models import Program
from openpartner.settings import Settings

_EVENT_IN: TypeAdapter[EventIn] = TypeAdapter(EventIn)


def ingest_batch(
    session: Session,
    program_for_item: Callable[[str | None], Program],
    items: list[dict[str, Any]],
    settings: Settings,
) -> dict[str, Any]:
    results: list[dict[str, Any] | None] = [None] * len(items)
    pending: list[service.Pending] = []
    positions: list[int] = []
    for index, raw in enumerate(items):
        try:
            body = _EVENT_IN.validate_python(raw)
            program = program_for_item(body.program_id)
            key = service.idempotency_key(body, None)
        except ValidationError as exc:
            problem = validation_problem(exc.errors())
            results[index] = {
                "index": index,
                "status": "rejected",
                "code": problem.code,
                "detail": "The event is not valid.",
                "errors": problem.errors,
            }
            continue
        except OpenPartnerError as exc:
            results[index] = _result(index, exc)
            continue
        pending.append(service.Pending(program, body, key))
        positions.append(index)
    # Items rejected before this point write nothing, so they do not change the others' order.
    for index, outcome in zip(positions, ingest_in_order(session, pending, settings), strict=True):
        results[index] = _result(index, outcome)
    done = [r for r in results if r is not None]
    counts = {"accepted": 0, "duplicate": 0, "rejected": 0}
    for r in done:
        counts[r["status"]] += 1
    return {
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
        "results": done,
    }


def ingest_in_order(
    session: Session,
    items: Sequence[service.Pending],
    settings: Settings,
    known: Known | None = None,
) -> list[service.Ingested | OpenPartnerError]:
    """Ingest ``items`` in order, each answered exactly as if it had been sent alone after the
    ones before it; a client error is that item's answer and writes nothing of it. ``known``:
    the rules of every item's program, already read (group_commit.py)."""
    outcomes: list[service.Ingested | OpenPartnerError | None] = [None] * len(items)
    run: list[int] = []

    def flush_run() -> None:
        if run:
            done = service.ingest_many(session, [items[i] for i in run], settings, known=known)
            for i, outcome in zip(run, done, strict=True):
                outcomes[i] = outcome
            run.clear()

    for i, item in enumerate(items):
        if not service.needs_lookups(item.body):
            run.append(i)
            continue
        # It may refund a sale an earlier item made: store everything before it first.
        flush_run()
        try:
            outcomes[i] = service.ingest(
                session, item.program, item.body, item.key, settings, known=known
            )
        except OpenPartnerError as exc:
            outcomes[i] = exc
    flush_run()
    return [o for o in outcomes if o is not None]


def _result(index: int, outcome: service.Ingested | OpenPartnerError) -> dict[str, Any]:
    if isinstance(outcome, OpenPartnerError):
        return {
            "index": index,
            "status": "rejected",
            "code": outcome.code,
            "detail": outcome.detail,
        }
    status = "duplicate" if outcome.replayed else "accepted"
    return {"index": index, "status": status, "id": outcome.response["id"]}
