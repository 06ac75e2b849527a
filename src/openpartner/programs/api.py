from __future__ import annotations

from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query

from openpartner.api.deps import DbSession, ProgramsRead, ProgramsWrite
from openpartner.api.pagination import Page, paginate
from openpartner.programs import service
from openpartner.programs.models import Program
from openpartner.programs.schemas import ProgramCreate, ProgramOut, ProgramUpdate

router = APIRouter(prefix="/v1/programs", tags=["programs"])
Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=200)]


@router.post("", status_code=201, response_model=ProgramOut)
def create_program(body: ProgramCreate, session: DbSession, principal: ProgramsWrite) -> Program:
    return service.create_program(session, principal, body)


@router.get("", response_model=Page[ProgramOut])
def list_programs(
    session: DbSession,
    principal: ProgramsRead,
    limit: Limit = 50,
    cursor: Cursor = None,
    archived: bool | None = None,
) -> dict[str, object]:
    stmt = sa.select(Program).where(*principal.filters(Program))
    if principal.program_id is not None:
        stmt = stmt.where(Program.id == principal.program_id)
    if archived is not None:
        stmt = stmt.where(Program.archived.is_(archived))
    rows, has_more, next_cursor = paginate(session, stmt, Program.id, limit=limit, cursor=cursor)
    return {"data": rows, "has_more": has_more, "next_cursor": next_cursor}


@router.get("/{program_id}", response_model=ProgramOut)
def get_program(program_id: str, session: DbSession, principal: ProgramsRead) -> Program:
    return service.get_program(session, principal, program_id)


@router.patch("/{program_id}", response_model=ProgramOut)
def update_program(
    program_id: str, body: ProgramUpdate, session: DbSession, principal: ProgramsWrite
) -> Program:
    return service.update_program(session, principal, program_id, body)


@router.post("/{program_id}/archive", response_model=ProgramOut)
def archive_program(program_id: str, session: DbSession, principal: ProgramsWrite) -> Program:
    return service.archive_program(session, principal, program_id)
