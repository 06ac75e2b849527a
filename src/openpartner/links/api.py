from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query

from openpartner.api.deps import DbSession, OwnLinksRead, OwnLinksWrite
from openpartner.api.pagination import Page, paginate
from openpartner.links import service
from openpartner.links.models import Link
from openpartner.links.schemas import LinkCreate, LinkOut, LinkUpdate

router = APIRouter(prefix="/v1/links", tags=["links"])


@router.post("", status_code=201, response_model=LinkOut)
def create_link(body: LinkCreate, session: DbSession, principal: OwnLinksWrite) -> Link:
    return service.create_link(session, principal, body)


@router.get("", response_model=Page[LinkOut])
def list_links(
    session: DbSession,
    principal: OwnLinksRead,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    program_id: Annotated[str | None, Query(max_length=32)] = None,
    partner_id: Annotated[str | None, Query(max_length=32)] = None,
    archived: bool | None = None,
) -> dict[str, object]:
    stmt = sa.select(Link).where(*principal.filters(Link))
    if program_id:
        stmt = stmt.where(Link.program_id == program_id)
    if partner_id:
        stmt = stmt.where(Link.partner_id == partner_id)
    if archived is not None:
        stmt = stmt.where(Link.archived.is_(archived))
    rows, has_more, next_cursor = paginate(session, stmt, Link.id, limit=limit, cursor=cursor)
    return {"data": rows, "has_more": has_more, "next_cursor": next_cursor}


@router.get("/{link_id}", response_model=LinkOut)
def get_link(link_id: str, session: DbSession, principal: OwnLinksRead) -> Link:
    return service.get_link(session, principal, link_id)


@router.patch("/{link_id}", response_model=LinkOut)
def update_link(
    link_id: str, body: LinkUpdate, session: DbSession, principal: OwnLinksWrite
) -> Link:
    return service.update_link(session, principal, link_id, body)


@router.post("/{link_id}/archive", response_model=LinkOut)
def archive_link(link_id: str, session: DbSession, principal: OwnLinksWrite) -> Link:
    return service.archive_link(session, principal, link_id)
