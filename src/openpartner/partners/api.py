from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query

from openpartner.api.deps import DbSession, OwnPartnerRead, PartnersWrite
from openpartner.api.pagination import Page, paginate
from openpartner.partners import service
from openpartner.partners.models import Partner
from openpartner.partners.schemas import PartnerCreate, PartnerOut, PartnerStatus, PartnerUpdate

router = APIRouter(prefix="/v1/partners", tags=["partners"])


@router.post("", status_code=201, response_model=PartnerOut)
def create_partner(body: PartnerCreate, session: DbSession, principal: PartnersWrite) -> Partner:
    return service.create_partner(session, principal, body)


@router.get("", response_model=Page[PartnerOut])
def list_partners(
    session: DbSession,
    principal: OwnPartnerRead,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    program_id: Annotated[str | None, Query(max_length=32)] = None,
    status: PartnerStatus | None = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
) -> dict[str, object]:
    stmt = sa.select(Partner).where(*principal.filters(Partner))
    if program_id:
        stmt = stmt.where(Partner.program_id == program_id)
    if status:
        stmt = stmt.where(Partner.status == status)
    if email:
        stmt = stmt.where(Partner.email == service.normalize_email(email))
    rows, has_more, next_cursor = paginate(session, stmt, Partner.id, limit=limit, cursor=cursor)
    return {"data": rows, "has_more": has_more, "next_cursor": next_cursor}


@router.get("/{partner_id}", response_model=PartnerOut)
def get_partner(partner_id: str, session: DbSession, principal: OwnPartnerRead) -> Partner:
    return service.get_partner(session, principal, partner_id)


@router.patch("/{partner_id}", response_model=PartnerOut)
def update_partner(
    partner_id: str, body: PartnerUpdate, session: DbSession, principal: PartnersWrite
) -> Partner:
    return service.update_partner(session, principal, partner_id, body)
