from __future__ import annotations

import json
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import Field

from openpartner.accounts.scopes import get_readable
from openpartner.api.deps import AttributionRead, DbSession, ProgramsWrite
from openpartner.api.schemas import RequestModel, Timestamp
from openpartner.attribution import explain
from openpartner.attribution.replay import replay
from openpartner.core.errors import NotFound, ValidationFailed
from openpartner.core.time import utc_now
from openpartner.deals.service import get_deal
from openpartner.events.models import Event
from openpartner.partners.models import Partner
from openpartner.programs.schemas import AttributionModelName, WindowDays
from openpartner.programs.service import get_program

router = APIRouter(prefix="/v1", tags=["attribution"])

Model = Annotated[
    AttributionModelName | None,
    Query(description="What-if model; omit for the stored attribution."),
]
Params = Annotated[
    str | None,
    Query(
        max_length=2000, description='Model parameters as JSON, e.g. {"half_life_seconds": 86400}'
    ),
]
Window = Annotated[WindowDays | None, Query()]


def _params(raw: str | None) -> dict[str, Any]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError:
        raise ValidationFailed(
            "params must be a JSON object.", code="invalid_model_params"
        ) from None
    if not isinstance(value, dict):
        raise ValidationFailed("params must be a JSON object.", code="invalid_model_params")
    return value


def _explained(
    session: DbSession, event: Event, model: str | None, params: str | None, window: int | None
) -> dict[str, Any]:
    spec = explain.parse_what_if(model, _params(params))
    result, config = explain.evaluate(session, event, spec=spec, window_days=window)
    body = explain.render(result, config)
    body["event_id"] = event.id
    body["what_if"] = spec is not None or window is not None
    if not body["what_if"]:
        body["stored"] = explain.stored_credits(session, event.id)
    return body


@router.get("/events/{event_id}/attribution")
def event_attribution(
    event_id: str,
    session: DbSession,
    principal: AttributionRead,
    model: Model = None,
    params: Params = None,
    window_days: Window = None,
) -> dict[str, Any]:
    """Why the event's credit is what it is: touches considered and excluded (with reasons),
    model, parameters, config and engine versions, and each partner's share. With ``model``
    (and optionally ``params``, ``window_days``) it computes a what-if and writes nothing."""
    # Partner keys never get here (the policy), and could not read the event if they did.
    event = get_readable(session, principal, Event, event_id)
    return _explained(session, event, model, params, window_days)


@router.get("/deals/{deal_id}/attribution")
def deal_attribution(
    deal_id: str,
    session: DbSession,
    principal: AttributionRead,
    model: Model = None,
    params: Params = None,
    window_days: Window = None,
) -> dict[str, Any]:
    """The deal's breakdown per partner (percentage, amount, touches, roles) under any model,
    computed on the fly without writing. The deal must be closed (it needs an amount)."""
    deal = get_deal(session, principal, deal_id)
    if deal.event_id is None:
        raise ValidationFailed("The deal is not closed yet.", code="deal_open")
    event = session.scalar(sa.select(Event).where(Event.id == deal.event_id))
    if event is None:
        raise NotFound(f"Deal {deal_id} has no sale.")
    body = _explained(session, event, model, params, window_days)
    body["deal_id"] = deal.id
    # Computed now, on the fly (the seed's breakdown carries both fields).
    body["calculated_at"] = utc_now().isoformat()
    names = {
        partner_id: name
        for partner_id, name in session.execute(
            sa.select(Partner.id, Partner.name).where(
                Partner.id.in_([p["partner_id"] for p in body["partners"]])
            )
        )
    }
    for entry in body["partners"]:
        entry["partner_name"] = names.get(entry["partner_id"])
    return body


class ReplayIn(RequestModel):
    model: AttributionModelName
    params: dict[str, Any] = Field(default_factory=dict, max_length=16)
    window_days: WindowDays | None = None
    since: Timestamp | None = None
    dry_run: bool = True


@router.post("/programs/{program_id}/attribution/replay")
def replay_program(
    program_id: str, body: ReplayIn, session: DbSession, principal: ProgramsWrite
) -> dict[str, Any]:
    """Re-derive the program's history under another model or window. With ``dry_run`` (the
    default) it only reports, per partner and currency, the current total, the replayed total
    and the difference, of attributed amounts (``partners``) and of commissions owed
    (``commissions``: live commissions plus their adjustments); otherwise it applies the change
    as a new config version effective from ``since`` and rewrites the attributions, the
    commissions following (paid money becomes adjustments)."""
    get_program(session, principal, program_id)
    report = replay(
        session,
        program_id,
        model=body.model,
        params=body.params,
        window_days=body.window_days,
        since=body.since,
        dry_run=body.dry_run,
    )
    return report.as_dict()
