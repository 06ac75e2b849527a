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


class PartnerNotInProgram(ValidationFailed):
    default_code = "partner_not_in_program"


class DealCloseConflict(Conflict):
    """The deal is closed, and this close asks for something else than the first one did."""

    default_code = "deal_close_conflict"


def record_touchpoint(session: Session, principal: Principal, data: TouchpointIn) -> Touchpoint:
    partner = get_partner(session, principal, data.partner_id)
    customer_id = check_identifier(data.customer_id, "customer_id")
    if data.deal_id is not None:
        deal = get_deal(session, principal, data.deal_id)
        if deal.program_id != partner.program_id:
            # Stored under the partner's program, the touch would never meet the deal's sale.
            raise PartnerNotInProgram(
                f"Partner {partner.id} is not in the program of deal {deal.id}.",
                errors=[
                    {
                        "loc": ["body", "partner_id"],
                        "msg": "not in the deal's program",
                        "type": "partner_not_in_program",
                    }
                ],
            )
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
    # Read-then-write: two closes of one deal at once must not both see it open (PostgreSQL;
    # SQLite serializes writers).
    session.refresh(deal, with_for_update=True)
    currency = normalize_currency(data.currency or program.currency)
    amount = parse_amount(data.amount, currency)
    if deal.status == "closed":
        _check_same_close(deal, data, amount, currency)
        return deal
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


def _check_same_close(deal: Deal, data: DealClose, amount: int, currency: str) -> None:
    """A retried close (same amount and currency; ``closed_at`` and ``model`` as before or
    left out) changes nothing and answers as the first did; any other close is a conflict."""
    differs = [
        name
        for name, asked, stored in (
            ("amount", amount, deal.amount),
            ("currency", currency, deal.currency),
            ("closed_at", ensure_utc(data.closed_at) if data.closed_at else None, deal.closed_at),
            ("model", data.model, deal.model),
        )
        if asked is not None and asked != stored
    ]
    if differs:
        raise DealCloseConflict(
            f"The deal is already closed ({deal.amount} minor units of {deal.currency} at "
            f"{deal.closed_at}); this close differs in {', '.join(differs)}.",
            errors=[
                {"loc": ["body", name], "msg": "differs from the close", "type": "conflict"}
                for name in differs
            ],
        )


def deal_view(session: Session, deal: Deal) -> dict[str, Any]:
    out = DealOut.model_validate(deal)
    out.touchpoints = [TouchpointOut.model_validate(t) for t in touchpoints_of(session, deal)]
    return out.model_dump(mode="json")
