from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from openpartner.api.deps import DbSession, EventsRead, EventsWrite
from openpartner.deals import service
from openpartner.deals.models import Touchpoint
from openpartner.deals.schemas import DealClose, DealIn, DealOut, TouchpointIn, TouchpointOut
from openpartner.programs.service import program_for

router = APIRouter(prefix="/v1", tags=["deals"])


@router.post("/touchpoints", status_code=201, response_model=TouchpointOut)
def create_touchpoint(body: TouchpointIn, session: DbSession, principal: EventsWrite) -> Touchpoint:
    """Record a partner's touch (referral, intro, demo, support, closer, other) on a deal or a
    customer. Touchpoints and clicks are both touches for attribution."""
    return service.record_touchpoint(session, principal, body)


@router.post("/deals", status_code=201, response_model=DealOut)
def create_deal(
    body: DealIn, request: Request, session: DbSession, principal: EventsWrite
) -> dict[str, Any]:
    program = program_for(session, principal, body.program_id)
    deal = service.create_deal(session, program, body, request.app.state.settings)
    return service.deal_view(session, deal)


@router.post("/deals/{deal_id}/close", response_model=DealOut)
def close_deal(
    deal_id: str, body: DealClose, request: Request, session: DbSession, principal: EventsWrite
) -> dict[str, Any]:
    deal = service.get_deal(session, principal, deal_id)
    program = program_for(session, principal, deal.program_id)
    service.close_deal(session, program, deal, body, request.app.state.settings)
    return service.deal_view(session, deal)


@router.get("/deals/{deal_id}", response_model=DealOut)
def get_deal(deal_id: str, session: DbSession, principal: EventsRead) -> dict[str, Any]:
    """The deal with its touchpoints in time order."""
    return service.deal_view(session, service.get_deal(session, principal, deal_id))
