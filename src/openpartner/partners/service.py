from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.accounts.service import revoke_partner_keys
from openpartner.core.errors import Conflict, NotFound
from openpartner.core.ids import new_id
from openpartner.partners.models import Partner
from openpartner.partners.schemas import PartnerCreate, PartnerUpdate
from openpartner.programs.service import get_program


def normalize_email(email: str) -> str:
    return email.strip().lower()


def get_partner(session: Session, principal: Principal, partner_id: str) -> Partner:
    partner = session.get(Partner, partner_id)
    if partner is None:
        raise NotFound(f"Partner {partner_id} not found.")
    principal.check_program(partner.program_id)
    principal.check_partner(partner.id)
    return partner


def _ensure_email_free(session: Session, program_id: str, email: str, exclude: str = "") -> None:
    taken = session.scalar(
        sa.select(Partner.id).where(
            Partner.program_id == program_id, Partner.email == email, Partner.id != exclude
        )
    )
    if taken:
        raise Conflict(
            f"A partner with email {email} already exists in this program.",
            code="duplicate_partner_email",
        )


def create_partner(session: Session, principal: Principal, data: PartnerCreate) -> Partner:
    program = get_program(session, principal, data.program_id)
    email = normalize_email(data.email)
    _ensure_email_free(session, program.id, email)
    partner = Partner(
        id=new_id("ptn"),
        program_id=program.id,
        name=data.name.strip(),
        email=email,
        status=data.status,
        metadata_=data.metadata,
    )
    session.add(partner)
    session.flush()
    return partner


def update_partner(
    session: Session, principal: Principal, partner_id: str, data: PartnerUpdate
) -> Partner:
    partner = get_partner(session, principal, partner_id)
    if data.name is not None:
        partner.name = data.name.strip()
    if data.email is not None:
        email = normalize_email(data.email)
        _ensure_email_free(session, partner.program_id, email, exclude=partner.id)
        partner.email = email
    if data.status is not None:
        if data.status == "revoked" and partner.status != "revoked":
            # Its keys die with it, and stay dead if the partner is reinstated.
            revoke_partner_keys(session, partner.id)
        partner.status = data.status
    if data.metadata is not None:
        partner.metadata_ = data.metadata
    session.flush()
    return partner
