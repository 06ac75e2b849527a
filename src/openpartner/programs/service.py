from __future__ import annotations

from urllib.parse import urlsplit

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.attribution.configs import BEGINNING, record_config
from openpartner.attribution.models import parse_model
from openpartner.core.errors import Forbidden, NotFound, ValidationFailed
from openpartner.core.ids import new_id
from openpartner.core.money import normalize_currency
from openpartner.core.time import utc_now
from openpartner.core.urls import normalize_domain, normalize_origin, validate_destination
from openpartner.programs.models import Program
from openpartner.programs.schemas import ProgramCreate, ProgramUpdate
from openpartner.router.invalidation import program_changed


def get_program(session: Session, principal: Principal, program_id: str) -> Program:
    principal.check_program(program_id)
    program = session.get(Program, program_id)
    if program is None:
        raise program_not_found(program_id)
    return program


def allowed_origins_anywhere(session: Session) -> set[str]:
    """Every origin some live program allows (for CORS preflights, which carry no key)."""
    rows = session.scalars(sa.select(Program.allowed_origins).where(Program.archived.is_(False)))
    return {origin for origins in rows for origin in origins or ()}


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
        attribution_params=parse_model(
            data.attribution_model, data.attribution_params
        ).params_for_storage(),
        cookie_lifetime_days=data.cookie_lifetime_days,
        cookie_domain=normalize_domain(data.cookie_domain) if data.cookie_domain else None,
        cookie_name=data.cookie_name or "_cref",
        click_param=data.click_param or "cref",
        velocity_limit_per_minute=data.velocity_limit_per_minute,
        holding_days=data.holding_days,
        auto_approve=data.auto_approve,
        payout_minimums=_minimums(data.payout_minimums),
        payout_schedule=data.payout_schedule,
        payout_provider=data.payout_provider,
        metadata_=data.metadata,
    )
    session.add(program)
    session.flush()
    record_config(
        session,
        program_id=program.id,
        model=program.attribution_model,
        params=program.attribution_params,
        window_days=program.attribution_window_days,
        effective_from=BEGINNING,
        reason="created",
    )
    return program


def update_program(
    session: Session, principal: Principal, program_id: str, data: ProgramUpdate
) -> Program:
    program = get_program(session, principal, program_id)
    fields_before = _attribution_fields(program)
    fields = data.model_dump(exclude_unset=True)
    if "attribution_model" in fields and "attribution_params" not in fields:
        fields["attribution_params"] = {}  # another model's parameters do not carry over
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
    if fields.get("payout_minimums") is not None:
        program.payout_minimums = _minimums(fields.pop("payout_minimums"))
    if fields.get("payout_schedule") not in (None, program.payout_schedule):
        program.next_payout_at = None  # the scheduler picks the next date of the new schedule
    for name, value in fields.items():
        if value is not None:
            setattr(program, name, value)
    program.attribution_params = parse_model(
        program.attribution_model, program.attribution_params
    ).params_for_storage()
    if fields_before != _attribution_fields(program):
        # A new version effective now: events before now keep the rules they were paid under.
        record_config(
            session,
            program_id=program.id,
            model=program.attribution_model,
            params=program.attribution_params,
            window_days=program.attribution_window_days,
            effective_from=utc_now(),
            reason="updated",
        )
    session.flush()
    program_changed(session, program.id)
    return program


def archive_program(session: Session, principal: Principal, program_id: str) -> Program:
    program = get_program(session, principal, program_id)
    program.archived = True
    session.flush()
    program_changed(session, program.id)
    return program


def _minimums(values: dict[str, int]) -> dict[str, int]:
    return {normalize_currency(currency): amount for currency, amount in values.items()}


def _domains(values: list[str]) -> list[str]:
    return sorted({normalize_domain(v) for v in values})


def program_for(session: Session, principal: Principal, program_id: str | None) -> Program:
    """The program a write targets: the key's own program when it is bound to one, otherwise
    the ``program_id`` the client named (required then)."""
    return get_program(session, principal, target_program_id(principal, program_id))


def program_not_found(program_id: str) -> NotFound:
    return NotFound(f"Program {program_id} not found.")


def target_program_id(principal: Principal, program_id: str | None) -> str:
    """The id :func:`program_for` loads (without loading it)."""
    if principal.program_id is not None:
        if program_id is not None and program_id != principal.program_id:
            raise program_not_found(program_id)
        program_id = principal.program_id
    if program_id is None:
        raise ValidationFailed(
            "program_id is required with a key that is not bound to a program.",
            code="program_required",
            errors=[{"loc": ["body", "program_id"], "msg": "required", "type": "missing"}],
        )
    return program_id


def _attribution_fields(program: Program) -> tuple[str, dict[str, object], int]:
    return (
        program.attribution_model,
        dict(program.attribution_params),
        program.attribution_window_days,
    )
