from __future__ import annotations

from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Query

from openpartner.accounts import service
from openpartner.accounts.models import ApiKey
from openpartner.accounts.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from openpartner.api.deps import CurrentPrincipal, DbSession
from openpartner.api.pagination import Page, paginate
from openpartner.core.errors import NotFound
from openpartner.partners.models import Partner

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post("", status_code=201, response_model=ApiKeyCreated)
def create_api_key(
    body: ApiKeyCreate, session: DbSession, principal: CurrentPrincipal
) -> dict[str, Any]:
    principal.require_admin()
    program_id = body.program_id
    if body.partner_id is not None:
        partner = session.get(Partner, body.partner_id)
        if partner is None:
            raise NotFound(f"Partner {body.partner_id} not found.")
        program_id = partner.program_id
    created = service.create_key(
        session,
        kind=body.kind,
        scopes=body.scopes,
        name=body.name,
        is_admin=body.admin,
        program_id=program_id,
        partner_id=body.partner_id,
    )
    out = ApiKeyOut.model_validate(created.key).model_dump()
    return {**out, "token": created.token}


@router.get("", response_model=Page[ApiKeyOut])
def list_api_keys(
    session: DbSession,
    principal: CurrentPrincipal,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, object]:
    principal.require_admin()
    rows, has_more, next_cursor = paginate(
        session, sa.select(ApiKey), ApiKey.id, limit=limit, cursor=cursor
    )
    return {"data": rows, "has_more": has_more, "next_cursor": next_cursor}


@router.post("/{key_id}/revoke", response_model=ApiKeyOut)
def revoke_api_key(key_id: str, session: DbSession, principal: CurrentPrincipal) -> ApiKey:
    principal.require_admin()
    return service.revoke_key(session, key_id)
