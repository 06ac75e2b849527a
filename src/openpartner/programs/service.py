from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.core.errors import Forbidden, NotFound
from openpartner.core.ids import new_id
from openpartner.core.money import normalize_currency
from openpartner.core.urls import normalize_domain, normalize_origin, validate_destination
from openpartner.programs.models import Program
from openpartner.programs.schemas import ProgramCreate, ProgramUpdate
from openpartner.router.invalidation import program_changed


def get_program(session: Session, principal: Principal, program_id: str) -> Program:
    principal.check_program(program_id)
    program = session.get(Program, program_id)
    if program is None:
        raise NotFound(f"Program {program_id} not found.")
    return program


def create_program(session: Session, principal: Principal, data: ProgramCreate) -> Program:
    if principal.program_id is not None:
        raise Forbidden("A program-bound key cannot create programs.", code="program_bound_key")
    url = data.default_destination_url.strip()
    domains = data.allowed_domains
    if domains is None:
        host = urlsplit(url).hostname
        domains = [host] if host else []
    allowed = _domains(domains)
    program = Program(
        id=new_id("prg"),
        name=data.name.strip(),
        currency=normalize_currency(data.currency),
        default_destination_url=validate_destination(url, allowed),
        allowed_domains=allowed,
        allowed_origins=[normalize_origin(o) for o in data.allowed_origins],
        attribution_window_days=data.attribution_window_days,
        attribution_model=data.attribution_model,
        cookie_lifetime_days=data.cookie_lifetime_days,
        cookie_domain=normalize_domain(data.cookie_domain) if data.cookie_domain else None,
        cookie_name=data.cookie_name or "_cref",
        click_param=data.click_param or "cref",
        velocity_limit_per_minute=data.velocity_limit_per_minute,
        metadata_=data.metadata,
    )
    session.add(program)
    session.flush()
    return program


def update_program(
    session: Session, principal: Principal, program_id: str, data: ProgramUpdate
) -> Program:
    program = get_program(session, principal, program_id)
    fields = data.model_dump(exclude_unset=True)
    if "allowed_domains" in fields and fields["allowed_domains"] is not None:
        program.allowed_domains = _domains(fields.pop("allowed_domains"))
    if "default_destination_url" in fields or "allowed_domains" in data.model_fields_set:
        url = fields.pop("default_destination_url", None) or program.default_destination_url
        program.default_destination_url = validate_destination(url, program.allowed_domains)
    if fields.get("allowed_origins") is not None:
        program.allowed_origins = [normalize_origin(o) for o in fields.pop("allowed_origins")]
    if "cookie_domain" in fields:
        value = fields.pop("cookie_domain")
        program.cookie_domain = normalize_domain(value) if value else None
    if "metadata" in fields:
        program.metadata_ = fields.pop("metadata") or {}
    for name, value in fields.items():
        if value is not None:
            setattr(program, name, value)
    session.flush()
    program_changed(session, program.id)
    return program


def archive_program(session: Session, principal: Principal, program_id: str) -> Program:
    program = get_program(session, principal, program_id)
    program.archived = True
    session.flush()
    program_changed(session, program.id)
    return program


def _domains(values: list[str]) -> list[str]:
    return sorted({normalize_domain(v) for v in values})
