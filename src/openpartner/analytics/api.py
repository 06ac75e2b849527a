"""Analytics routes (scope ``attribution:read``). Program-wide views need a key that may open the
program and is not bound to a partner; a partner's key reads ``/v1/partners/{id}/analytics`` for
its own id only. Ranges: ``from`` and ``to`` are dates, both included (UTC)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query

from openpartner.analytics import journeys, mix, partner, service
from openpartner.analytics.period import period
from openpartner.analytics.schemas import (
    DataDrivenOut,
    LeaderboardOut,
    ModelsOut,
    OverviewOut,
    PartnerAnalyticsOut,
    RecentOut,
    TouchMixOut,
)
from openpartner.api.deps import AttributionRead, DbSession
from openpartner.core.money import normalize_currency
from openpartner.events.schemas import EVENT_TYPE_PATTERN
from openpartner.partners.service import get_partner
from openpartner.programs.models import Program
from openpartner.programs.service import get_program

router = APIRouter(tags=["analytics"])
PREFIX = "/v1/programs/{program_id}/analytics"
From = Annotated[date | None, Query(alias="from", description="First day, included (UTC).")]
To = Annotated[date | None, Query(description="Last day, included (UTC). Default: today.")]


def _program(session: DbSession, principal: AttributionRead, program_id: str) -> Program:
    service.require_program_view(principal)
    return get_program(session, principal, program_id)


@router.get(f"{PREFIX}/overview", response_model=OverviewOut)
def overview(
    program_id: str,
    session: DbSession,
    principal: AttributionRead,
    from_: From = None,
    to: To = None,
) -> dict[str, Any]:
    """Conversions (per type), revenue per currency (sales minus refunds), average sale, and
    attributed vs unattributed. Default range: the last 30 days."""
    program = _program(session, principal, program_id)
    return service.overview(session, program, period(from_, to))


@router.get(f"{PREFIX}/leaderboard", response_model=LeaderboardOut)
def leaderboard(
    program_id: str,
    session: DbSession,
    principal: AttributionRead,
    from_: From = None,
    to: To = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Za-z]{3}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """Partners ranked by net credited revenue in ``currency`` (default: the program's), then
    by conversions credited, then partner id."""
    program = _program(session, principal, program_id)
    ranking = normalize_currency(currency) if currency else program.currency
    return service.leaderboard(session, program, period(from_, to), ranking, limit)


@router.get(f"{PREFIX}/models", response_model=ModelsOut)
def models(
    program_id: str,
    session: DbSession,
    principal: AttributionRead,
    from_: From = None,
    to: To = None,
) -> dict[str, Any]:
    """Conversions and attribution rows per model and engine version."""
    program = _program(session, principal, program_id)
    return service.model_usage(session, program, period(from_, to))


@router.get(f"{PREFIX}/touch-mix", response_model=TouchMixOut)
def touch_mix(
    program_id: str,
    session: DbSession,
    principal: AttributionRead,
    from_: From = None,
    to: To = None,
) -> dict[str, Any]:
    """Touches recorded in the range and touches credited on its conversions, per kind and
    touchpoint type."""
    program = _program(session, principal, program_id)
    window = period(from_, to)
    data = mix.touch_mix(session, program.id, window)
    return {"program_id": program.id, "period": window.as_dict(), "data": data}


@router.get(f"{PREFIX}/recent-conversions", response_model=RecentOut)
def recent_conversions(
    program_id: str,
    session: DbSession,
    principal: AttributionRead,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The latest conversions with the partners credited on each."""
    program = _program(session, principal, program_id)
    return service.recent_conversions(session, program, limit)


@router.get(f"{PREFIX}/data-driven", response_model=DataDrivenOut)
def data_driven(
    program_id: str,
    session: DbSession,
    principal: AttributionRead,
    from_: From = None,
    to: To = None,
    type: Annotated[str | None, Query(pattern=EVENT_TYPE_PATTERN)] = None,
) -> dict[str, Any]:
    """Markov removal effect and Shapley value of each partner over the program's converting and
    non-converting partner journeys (``type``: count only that conversion type). Analytics
    only, never used for payouts."""
    program = _program(session, principal, program_id)
    return journeys.data_driven(session, program, period(from_, to), type)


@router.get("/v1/partners/{partner_id}/analytics", response_model=PartnerAnalyticsOut)
def partner_analytics(
    partner_id: str,
    session: DbSession,
    principal: AttributionRead,
    from_: From = None,
    to: To = None,
) -> dict[str, Any]:
    """One partner: conversions and revenue credited, share of the program's attributed revenue,
    touch mix and monthly totals. A partner's own key may read its own."""
    found = get_partner(session, principal, partner_id)
    return partner.partner_analytics(session, principal, found, period(from_, to))
