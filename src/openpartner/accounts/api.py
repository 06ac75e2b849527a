"""API keys. A key creates, lists and revokes only keys within its own rights (no escalation);
creating and revoking need ``keys:write``, listing ``keys:read`` (admin keys hold both)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from openpartner.accounts import service
from openpartner.accounts.models import ApiKey
from openpartner.accounts.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from openpartner.api.deps import DbSession, KeysRead, KeysWrite
from openpartner.api.pagination import Page, paginate

router = APIRouter(prefix="/v1/api-keys", tags=["api keys"])


@router.post("", status_code=201, response_model=ApiKeyCreated)
def create_api_key(body: ApiKeyCreate, session: DbSession, principal: KeysWrite) -> dict[str, Any]:
    """Binding defaults to the creating key's own: a program-bound key makes keys of its
    program, a partner's key keys of its partner."""
    program_id = body.program_id or principal.program_id
    partner_id = body.partner_id or principal.partner_id
    service.check_grant(
        principal,
        kind=body.kind,
        scopes=body.scopes,
        is_admin=body.admin,
        program_id=program_id,
        partner_id=partner_id,
    )
    created = service.create_key(
        session,
        kind=body.kind,
        scopes=body.scopes,
        name=body.name,
        is_admin=body.admin,
        program_id=program_id,
        partner_id=partner_id,
    )
    out = ApiKeyOut.model_validate(created.key).model_dump()
    return {**out, "token": created.token}


@router.get("", response_model=Page[ApiKeyOut])
def list_api_keys(
    session: DbSession,
    principal: KeysRead,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, object]:
    stmt = service.visible_keys(principal)
    rows, has_more, next_cursor = paginate(session, stmt, ApiKey.id, limit=limit, cursor=cursor)
    return {"data": rows, "has_more": has_more, "next_cursor": next_cursor}


@router.post("/{key_id}/revoke", response_model=ApiKeyOut)
def revoke_api_key(
    key_id: str, request: Request, session: DbSession, principal: KeysWrite
) -> ApiKey:
    """Revoked at once in this process, within seconds in others. The last active admin
    credential cannot be revoked (409 ``last_admin_credential``)."""
    key = service.get_visible_key(session, principal, key_id)
    env_admin = request.app.state.settings.admin_api_key is not None
    return service.revoke_key(session, key, env_admin=env_admin)
