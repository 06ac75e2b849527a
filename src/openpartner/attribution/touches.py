"""Gather the touches of a conversion from the database: the customer's clicks, the touchpoints
on the customer or deal, and the synthetic touch of a partner's promotion code."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.clicks.models import Click
from openpartner.coupons.models import PromotionCode
from openpartner.deals.models import Touchpoint
from openpartner.events.models import Event
from openpartner.identity.service import clicks_of_customer
from openpartner.partners.models import Partner


@dataclass(frozen=True)
class TouchRecord:
    id: str
    seq: int
    partner_id: str
    at: datetime
    kind: str
    """``click``, ``touchpoint`` or ``coupon``."""
    role: str | None
    flagged: bool
    partner_revoked: bool


def touches_for_event(session: Session, event: Event) -> list[TouchRecord]:
    touches: list[TouchRecord] = []
    if event.customer_id:
        click_ids = clicks_of_customer(session, event.program_id, event.customer_id)
        if click_ids:
            for click in session.scalars(sa.select(Click).where(Click.id.in_(click_ids))):
                touches.append(
                    TouchRecord(
                        id=click.id,
                        seq=click.seq,
                        partner_id=click.partner_id,
                        at=click.clicked_at,
                        kind="click",
                        role=None,
                        flagged=click.bot or click.duplicate or click.velocity,
                        partner_revoked=click.revoked,
                    )
                )
    conditions = []
    if event.customer_id:
        conditions.append(Touchpoint.customer_id == event.customer_id)
    if event.deal_id:
        conditions.append(Touchpoint.deal_id == event.deal_id)
    if conditions:
        rows = session.scalars(
            sa.select(Touchpoint).where(
                Touchpoint.program_id == event.program_id, sa.or_(*conditions)
            )
        )
        for tp in rows:
            touches.append(
                TouchRecord(
                    id=tp.id,
                    seq=tp.seq,
                    partner_id=tp.partner_id,
                    at=tp.occurred_at,
                    kind="touchpoint",
                    role=tp.type,
                    flagged=False,
                    partner_revoked=False,
                )
            )
    if event.promotion_code:
        code = session.scalar(
            sa.select(PromotionCode).where(
                PromotionCode.program_id == event.program_id,
                PromotionCode.code == event.promotion_code.upper(),
                PromotionCode.active.is_(True),
            )
        )
        if code is not None:
            # Synthetic touch at the moment of the sale, clearly marked as a coupon.
            touches.append(
                TouchRecord(
                    id=code.id,
                    seq=0,
                    partner_id=code.partner_id,
                    at=event.occurred_at,
                    kind="coupon",
                    role="closer",
                    flagged=False,
                    partner_revoked=False,
                )
            )
    return _mark_revoked(session, touches)


def _mark_revoked(session: Session, touches: list[TouchRecord]) -> list[TouchRecord]:
    partner_ids = {t.partner_id for t in touches}
    if not partner_ids:
        return touches
    revoked = set(
        session.scalars(
            sa.select(Partner.id).where(Partner.id.in_(partner_ids), Partner.status == "revoked")
        )
    )
    return [
        t
        if t.partner_id not in revoked or t.partner_revoked
        else TouchRecord(**{**t.__dict__, "partner_revoked": True})
        for t in touches
    ]
