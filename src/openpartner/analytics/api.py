"""Analytics routes (scope ``attribution:read``). Program-wide views need a key that may open the
program and is not bound to a partner; a partner's key reads ``/v1/partners/{id}/analytics`` for
its own id only. Ranges: ``from`` and ``to`` are dates, both included (UTC)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from openpartner.analytics import journeys, mix, partner, service
from openpartner.analytics.period import Period, period
from openpartner.analytics.schemas import (
    DataDrivenOut,
    LeaderboardOut,
    ModelsOut,
    OverviewOut,
    PartnerAnalyticsOut,
    RecentOut,
    TouchMixOut,
)
from openpartner.api.deps import AttributionRead, DbSession, OwnAnalyticsRead
from openpartner.core.money import normalize_currency
from openpartner.events.schemas import EVENT_TYPE_PATTERN
from openpartner.partners.service import get_partner
from openpartner.programs.models import Program
from openpartner.programs.service import get_program

router = APIRouter(tags=["analytics"])
PREFIX = "/v1/programs/{program_id}/analytics"
From = Annotated[date | None, Query(alias="from", description="First day, included (UTC).")]
To = Annotated[date | None, Query(description="Last day, included (UTC). Default: today.")]


def _viewed_program(program_id: str, session: DbSession, principal: AttributionRead) -> Program:
    """The program of the path, for a key that may see program-wide figures."""
    service.require_program_view(principal)
    return get_program(session, principal, program_id)


def _range(from_: From = None, to: To = None) -> Period:
    return period(from_, to)


ViewedProgram = Annotated[Program, Depends(_viewed_program)]
Range = Annotated[Period, Depends(_range)]


@router.get(f"{PREFIX}/overview", response_model=OverviewOut)
def overview(
    program: ViewedProgram,
    session: DbSession,
    window: Range,
) -> dict[str, Any]:
    """Conversions (per type), revenue per currency (sales minus refunds), average sale, and
    attributed vs unattributed. Default range: the last 30 days."""
    return service.overview(session, program, window)


@router.get(f"{PREFIX}/leaderboard", response_model=LeaderboardOut)
def leaderboard(
    program: ViewedProgram,
    session: DbSession,
    window: Range,
    currency: Annotated[str | None, Query(pattern=r"^[A-Za-z]{3}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Partners ranked by net credited revenue in ``currency`` (default: the program's), then
    by conversions credited, then partner id."""
    ranking = normalize_currency(currency) if currency else program.currency
    return service.leaderboard(session, program, window, ranking, limit)


@router.get(f"{PREFIX}/models", response_model=ModelsOut)
def models(
    program: ViewedProgram,
    session: DbSession,
    window: Range,
) -> dict[str, Any]:
    """Conversions and attribution rows per model and engine version."""
    return service.model_usage(session, program, window)


@router.get(f"{PREFIX}/touch-mix", response_model=TouchMixOut)
def touch_mix(
    program: ViewedProgram,
    session: DbSession,
    window: Range,
) -> dict[str, Any]:
    """Touches recorded in the range and touches credited on its conversions, per kind and
    touchpoint type."""
    data = mix.touch_mix(session, program.id, window)
    return {"program_id": program.id, "period": window.as_dict(), "data": data}


@router.get(f"{PREFIX}/recent-conversions", response_model=RecentOut)
def recent_conversions(
    program: ViewedProgram,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The latest conversions with the partners credited on each."""
    return service.recent_conversions(session, program, limit)


@router.get(f"{PREFIX}/data-driven", response_model=DataDrivenOut)
def data_driven(
    program: ViewedProgram,
    session: DbSession,
    window: Range,
    type: Annotated[str | None, Query(pattern=EVENT_TYPE_PATTERN)] = None,
) -> dict[str, Any]:
    """Markov removal effect and Shapley value of each partner over the program's converting and
    non-converting partner journeys (``type``: count only that conversion type). Analytics
    only, never used for payouts."""
    return journeys.data_driven(session, program, window, type)


@router.get("/v1/partners/{partner_id}/analytics", response_model=PartnerAnalyticsOut)
def partner_analytics(
    partner_id: str,
    session: DbSession,
    principal: OwnAnalyticsRead,
    window: Range,
) -> dict[str, Any]:
    """One partner: conversions and revenue credited, share of the program's attributed revenue,
    touch mix and monthly totals. A partner's own key may read its own."""
    found = get_partner(session, principal, partner_id)
    return partner.partner_analytics(session, principal, found, window)
