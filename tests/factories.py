"""Plain factory functions with keyword defaults. They flush, never commit."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.accounts.service import create_key
from openpartner.clicks.models import Click
from openpartner.core.ids import new_id
from openpartner.core.time import utc_now
from openpartner.links.models import Link
from openpartner.links.schemas import LinkCreate
from openpartner.links.service import create_link
from openpartner.partners.models import Partner
from openpartner.partners.schemas import PartnerCreate
from openpartner.partners.service import create_partner
from openpartner.programs.models import Program
from openpartner.programs.schemas import ProgramCreate
from openpartner.programs.service import create_program

ADMIN = Principal(key_id="key_test", kind="secret", is_admin=True)


def make_program(
    session: Session,
    *,
    name: str = "Acme Partners",
    currency: str = "USD",
    default_destination_url: str = "https://acme.example/welcome",
    allowed_domains: list[str] | None = None,
    **extra: object,
) -> Program:
    data = ProgramCreate.model_validate(
        {
            "name": name,
            "currency": currency,
            "default_destination_url": default_destination_url,
            "allowed_domains": allowed_domains or ["acme.example", "*.acme.example"],
            **extra,
        }
    )
    return create_program(session, ADMIN, data)


def make_partner(
    session: Session,
    *,
    program: Program | None = None,
    name: str = "Pat Partner",
    email: str | None = None,
    status: str = "active",
) -> Partner:
    program = program or make_program(session)
    data = PartnerCreate(
        program_id=program.id,
        name=name,
        email=email or f"pat-{secrets.token_hex(4)}@partner.example",
        status=status,  # type: ignore[arg-type]
    )
    return create_partner(session, ADMIN, data)


def make_link(
    session: Session,
    *,
    partner: Partner | None = None,
    key: str | None = None,
    destination_url: str | None = None,
) -> Link:
    partner = partner or make_partner(session)
    data = LinkCreate(partner_id=partner.id, key=key, destination_url=destination_url)
    return create_link(session, ADMIN, data)


def make_key(
    session: Session,
    *,
    scopes: list[str],
    program_id: str | None = None,
    kind: str = "secret",
    is_admin: bool = False,
) -> str:
    return create_key(
        session, kind=kind, scopes=scopes, program_id=program_id, is_admin=is_admin
    ).token


def make_click(
    session: Session,
    *,
    link: Link,
    at: datetime | None = None,
    bot: bool = False,
    duplicate: bool = False,
    velocity: bool = False,
    revoked: bool = False,
) -> Click:
    """A click as the router would have written it."""
    click = Click(
        id=new_id("clk"),
        link_id=link.id,
        partner_id=link.partner_id,
        program_id=link.program_id,
        clicked_at=at or utc_now(),
        ip_hash="0" * 64,
        visitor_hash="1" * 64,
        bot=bot,
        duplicate=duplicate,
        velocity=velocity,
        revoked=revoked,
    )
    session.add(click)
    session.flush()
    return click
