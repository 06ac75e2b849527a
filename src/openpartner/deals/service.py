"""Deals and touchpoints. Closing a deal records a ``sale`` event, attributed over the deal's
touchpoints (and the customer's clicks) by the same engine as every other conversion."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal, get_readable
from openpartner.core.errors import Conflict, ValidationFailed
from openpartner.core.ids import new_id
from openpartner.core.money import normalize_currency, parse_amount
from openpartner.core.time import ensure_utc, utc_now
from openpartner.deals.models import Deal, Touchpoint
from openpartner.deals.schemas import DealClose, DealIn, DealOut, TouchpointIn, TouchpointOut
from openpartner.events.schemas import EventIn
from openpartner.events.service import ingest
from openpartner.identity.guards import check_identifier
from openpartner.partners.service import get_partner
from openpartner.programs.models import Program
from openpartner.settings import Settings


def record_touchpoint(session: Session, principal: Principal, data: TouchpointIn) -> Touchpoint:
    partner = get_partner(session, principal, data.partner_id)
    customer_id = check_identifier(data.customer_id, "customer_id")
    if data.deal_id is not None:
        get_deal(session, principal, data.deal_id)
    elif customer_id is None:
        raise ValidationFailed(
            "A touchpoint needs a deal_id or a customer_id.", code="touch_target_required"
        )
    touchpoint = Touchpoint(
        id=new_id("tch"),
        program_id=partner.program_id,
        partner_id=partner.id,
        deal_id=data.deal_id,
        customer_id=customer_id,
        type=data.type,
        occurred_at=ensure_utc(data.occurred_at) if data.occurred_at else utc_now(),
        metadata_=data.metadata,
    )
    session.add(touchpoint)
    session.flush()
    return touchpoint


def get_deal(session: Session, principal: Principal, deal_id: str) -> Deal:
    return get_readable(session, principal, Deal, deal_id)


def touchpoints_of(session: Session, deal: Deal) -> list[Touchpoint]:
    conditions = [Touchpoint.deal_id == deal.id]
    if deal.customer_id:
        conditions.append(Touchpoint.customer_id == deal.customer_id)
    return list(
        session.scalars(
            sa.select(Touchpoint)
            .where(Touchpoint.program_id == deal.program_id, sa.or_(*conditions))
            .order_by(Touchpoint.occurred_at, Touchpoint.seq)
        )
    )


def create_deal(session: Session, program: Program, data: DealIn, settings: Settings) -> Deal:
    if data.external_id is not None:
        taken = session.scalar(
            sa.select(Deal.id).where(
                Deal.program_id == program.id, Deal.external_id == data.external_id
            )
        )
        if taken:
            raise Conflict(f"Deal {data.external_id!r} exists.", code="duplicate_deal")
    deal = Deal(
        id=new_id("deal"),
        program_id=program.id,
        external_id=data.external_id,
        customer_id=check_identifier(data.customer_id, "customer_id"),
        model=data.model,
        metadata_=data.metadata,
    )
    session.add(deal)
    session.flush()
    if data.amount is not None:
        close = DealClose(amount=data.amount, currency=data.currency, closed_at=data.closed_at)
        close_deal(session, program, deal, close, settings)
    return deal


def close_deal(
    session: Session, program: Program, deal: Deal, data: DealClose, settings: Settings
) -> Deal:
    if deal.status == "closed":
        raise Conflict("The deal is already closed.", code="deal_closed")
    currency = normalize_currency(data.currency or program.currency)
    amount = parse_amount(data.amount, currency)
    closed_at = ensure_utc(data.closed_at) if data.closed_at else utc_now()
    sale = EventIn(
        type="sale",
        customer_id=deal.customer_id,
        deal_id=deal.id,
        amount=amount,
        currency=currency,
        occurred_at=closed_at,
    )
    done = ingest(session, program, sale, f"deal:{deal.id}", settings)
    deal.status = "closed"
    deal.amount, deal.currency, deal.closed_at = amount, currency, closed_at
    deal.model = data.model or deal.model
    deal.event_id = done.response["id"]
    session.flush()
    return deal


def deal_view(session: Session, deal: Deal) -> dict[str, Any]:
    out = DealOut.model_validate(deal)
    out.touchpoints = [TouchpointOut.model_validate(t) for t in touchpoints_of(session, deal)]
    return out.model_dump(mode="json")
