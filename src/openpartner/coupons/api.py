from __future__ import annotations

from datetime import datetime
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Query
from pydantic import Field
from sqlalchemy.orm import Session

from openpartner.accounts.scopes import Principal
from openpartner.api.deps import DbSession, OwnPartnerRead, PartnersWrite
from openpartner.api.pagination import Page, paginate
from openpartner.api.schemas import RequestModel, ResponseModel
from openpartner.core.errors import Conflict
from openpartner.core.ids import new_id
from openpartner.coupons.models import PromotionCode
from openpartner.partners.service import get_partner

router = APIRouter(prefix="/v1/promotion-codes", tags=["promotion codes"])


class PromotionCodeIn(RequestModel):
    partner_id: str = Field(max_length=32)
    code: str = Field(pattern=r"^[A-Za-z0-9_-]{2,64}$")
    stripe_promotion_code_id: str | None = Field(default=None, max_length=255)
    """Stripe's ``promo_…`` id, when the code also exists in Stripe."""


class PromotionCodeOut(ResponseModel):
    id: str
    program_id: str
    partner_id: str
    code: str
    stripe_promotion_code_id: str | None
    active: bool
    created_at: datetime


def create_code(session: Session, principal: Principal, data: PromotionCodeIn) -> PromotionCode:
    partner = get_partner(session, principal, data.partner_id)
    code = data.code.upper()
    taken = session.scalar(
        sa.select(PromotionCode.id).where(
            PromotionCode.program_id == partner.program_id, PromotionCode.code == code
        )
    )
    if taken:
        raise Conflict(f"The code {code} is taken.", code="duplicate_promotion_code")
    promo = PromotionCode(
        id=new_id("cpn"),
        program_id=partner.program_id,
        partner_id=partner.id,
        code=code,
        stripe_promotion_code_id=data.stripe_promotion_code_id,
    )
    session.add(promo)
    session.flush()
    return promo


@router.post("", status_code=201, response_model=PromotionCodeOut)
def create_promotion_code(
    body: PromotionCodeIn, session: DbSession, principal: PartnersWrite
) -> PromotionCode:
    """Give a partner a promotion code: sales carrying it are attributed to the partner."""
    return create_code(session, principal, body)


@router.get("", response_model=Page[PromotionCodeOut])
def list_promotion_codes(
    session: DbSession,
    principal: OwnPartnerRead,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    partner_id: Annotated[str | None, Query(max_length=32)] = None,
) -> dict[str, object]:
    stmt = sa.select(PromotionCode).where(*principal.filters(PromotionCode))
    if partner_id:
        stmt = stmt.where(PromotionCode.partner_id == partner_id)
    rows, has_more, nxt = paginate(session, stmt, PromotionCode.id, limit=limit, cursor=cursor)
    return {"data": rows, "has_more": has_more, "next_cursor": nxt}
