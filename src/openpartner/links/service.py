from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.core.errors import Conflict, NotFound, ValidationFailed
from openpartner.core.ids import new_id, random_token
from openpartner.core.urls import validate_destination
from openpartner.links.models import Link
from openpartner.links.schemas import LinkCreate, LinkUpdate
from openpartner.partners.service import get_partner
from openpartner.programs.models import Program
from openpartner.router.invalidation import link_changed

# Paths the router serves itself; a link key must never shadow them.
RESERVED_KEYS = frozenset({"health", "metrics", "favicon.ico", "robots.txt", "static", "v1"})


def get_link(session: Session, principal: Principal, link_id: str) -> Link:
    link = session.get(Link, link_id)
    if link is None:
        raise NotFound(f"Link {link_id} not found.")
    principal.check_program(link.program_id)
    principal.check_partner(link.partner_id)
    return link


def _key_taken(session: Session, key: str) -> bool:
    return session.scalar(sa.select(Link.id).where(Link.key == key)) is not None


def _generate_key(session: Session) -> str:
    for _ in range(10):
        key = random_token(6)  # 8 URL-safe characters, 48 random bits
        if key not in RESERVED_KEYS and not _key_taken(session, key):
            return key
    raise Conflict("Could not generate a free link key; retry.", code="key_generation_failed")


def create_link(session: Session, principal: Principal, data: LinkCreate) -> Link:
    partner = get_partner(session, principal, data.partner_id)
    if data.program_id is not None and data.program_id != partner.program_id:
        raise ValidationFailed(
            "The partner does not belong to that program.", code="program_mismatch"
        )
    if partner.status != "active":
        raise Conflict("Links cannot be created for a revoked partner.", code="partner_revoked")
    program = session.get_one(Program, partner.program_id)
    if program.archived:
        raise Conflict("The program is archived.", code="program_archived")
    if data.key is not None:
        if data.key.lower() in RESERVED_KEYS:
            raise ValidationFailed(f"{data.key!r} is reserved.", code="reserved_key")
        if _key_taken(session, data.key):
            raise Conflict(f"The link key {data.key!r} is taken.", code="duplicate_link_key")
    destination = (
        validate_destination(data.destination_url, program.allowed_domains)
        if data.destination_url
        else None
    )
    link = Link(
        id=new_id("lnk"),
        key=data.key or _generate_key(session),
        program_id=program.id,
        partner_id=partner.id,
        destination_url=destination,
    )
    session.add(link)
    session.flush()
    link_changed(session, link.id)
    return link


def update_link(session: Session, principal: Principal, link_id: str, data: LinkUpdate) -> Link:
    link = get_link(session, principal, link_id)
    if "destination_url" in data.model_fields_set:
        program = session.get_one(Program, link.program_id)
        link.destination_url = (
            validate_destination(data.destination_url, program.allowed_domains)
            if data.destination_url
            else None
        )
    if data.archived is not None:
        link.archived = data.archived
    session.flush()
    link_changed(session, link.id)
    return link


def archive_link(session: Session, principal: Principal, link_id: str) -> Link:
    link = get_link(session, principal, link_id)
    link.archived = True
    session.flush()
    link_changed(session, link.id)
    return link
