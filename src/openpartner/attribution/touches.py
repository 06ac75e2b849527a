"""Gather the touches of conversions from the database: the customer's clicks, the touchpoints
on the customer or deal, and the synthetic touch of a partner's promotion code.

Set-based: the touches of any number of conversions (a whole ingest batch) come back from one
query, so attributing a batch costs one round trip, not one per event."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from openpartner.clicks.models import Click
from openpartner.coupons.models import PromotionCode
from openpartner.deals.models import Touchpoint
from openpartner.identity.models import IdentityEdge
from openpartner.partners.models import Partner


class Conversion(Protocol):
    """What attribution reads of an event: a stored ``Event`` or one about to be inserted."""

    @property
    def id(self) -> str: ...
    @property
    def program_id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def customer_id(self) -> str | None: ...
    @property
    def deal_id(self) -> str | None: ...
    @property
    def promotion_code(self) -> str | None: ...
    @property
    def occurred_at(self) -> datetime: ...
    @property
    def amount(self) -> int | None: ...
    @property
    def currency(self) -> str | None: ...


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


def touches_for_event(session: Session, event: Conversion) -> list[TouchRecord]:
    return touches_for_events(session, [event])[0]


def touches_for_events(session: Session, events: Sequence[Conversion]) -> list[list[TouchRecord]]:
    """The touches of each event, in the events' order: clicks, then touchpoints, then the
    coupon touch, each group in ingest order."""
    by_customer: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_deal: dict[tuple[str, str], list[int]] = defaultdict(list)
    by_code: dict[tuple[str, str], list[int]] = defaultdict(list)
    for i, event in enumerate(events):
        if event.customer_id:
            by_customer[(event.program_id, event.customer_id)].append(i)
        if event.deal_id:
            by_deal[(event.program_id, event.deal_id)].append(i)
        if event.promotion_code:
            by_code[(event.program_id, event.promotion_code.upper())].append(i)
    result: list[list[TouchRecord]] = [[] for _ in events]
    query = _touches_query(by_customer, by_deal, by_code)
    if query is None:
        return result
    clicks: list[list[TouchRecord]] = [[] for _ in events]
    points: list[list[TouchRecord]] = [[] for _ in events]
    coupons: list[list[TouchRecord]] = [[] for _ in events]
    seen_clicks: set[tuple[int, str]] = set()
    for row in session.execute(query):
        revoked = row.partner_status == "revoked"
        if row.kind == "click":
            # A click reached through a visitor counts unless another customer bound it first.
            if not row.owned and row.first_owner not in (None, row.customer_id):
                continue
            touch = TouchRecord(
                id=row.id,
                seq=row.seq,
                partner_id=row.partner_id,
                at=row.at,
                kind="click",
                role=None,
                flagged=bool(row.bot or row.duplicate or row.velocity),
                partner_revoked=bool(row.revoked) or revoked,
            )
            for i in by_customer.get((row.program_id, row.customer_id), ()):
                if (i, touch.id) not in seen_clicks:
                    seen_clicks.add((i, touch.id))
                    clicks[i].append(touch)
        elif row.kind == "touchpoint":
            touch = TouchRecord(
                id=row.id,
                seq=row.seq,
                partner_id=row.partner_id,
                at=row.at,
                kind="touchpoint",
                role=row.role,
                flagged=False,
                partner_revoked=revoked,
            )
            matched = set(by_customer.get((row.program_id, row.customer_id), ()))
            matched.update(by_deal.get((row.program_id, row.deal_id), ()))
            for i in matched:
                points[i].append(touch)
        else:
            for i in by_code.get((row.program_id, row.code), ()):
                # Synthetic touch at the moment of the sale, clearly marked as a coupon.
                coupons[i].append(
                    TouchRecord(
                        id=row.id,
                        seq=0,
                        partner_id=row.partner_id,
                        at=events[i].occurred_at,
                        kind="coupon",
                        role="closer",
                        flagged=False,
                        partner_revoked=revoked,
                    )
                )
    for i in range(len(events)):
        clicks[i].sort(key=lambda t: t.seq)
        points[i].sort(key=lambda t: t.seq)
        result[i] = clicks[i] + points[i] + coupons[i]
    return result


def _touches_query(
    by_customer: dict[tuple[str, str], list[int]],
    by_deal: dict[tuple[str, str], list[int]],
    by_code: dict[tuple[str, str], list[int]],
) -> sa.CompoundSelect[Any] | None:
    """One UNION ALL over every kind of touch, for every program the events belong to."""
    parts: list[sa.Select[Any]] = []
    for program_id in sorted({p for p, _ in (*by_customer, *by_deal, *by_code)}):
        customers = sorted(c for p, c in by_customer if p == program_id)
        deals = sorted(d for p, d in by_deal if p == program_id)
        codes = sorted(c for p, c in by_code if p == program_id)
        if customers:
            parts.append(_clicks_of_customers(program_id, customers))
        if customers or deals:
            parts.append(_touchpoints_of(program_id, customers, deals))
        if codes:
            parts.append(_coupons_of(program_id, codes))
    if not parts:
        return None
    return sa.union_all(*parts)


def _columns(
    kind: str,
    *,
    program_id: Any,
    id: Any,
    seq: Any = None,
    partner_id: Any,
    at: Any = None,
    customer_id: Any = None,
    deal_id: Any = None,
    code: Any = None,
    role: Any = None,
    bot: Any = None,
    duplicate: Any = None,
    velocity: Any = None,
    revoked: Any = None,
    owned: Any = None,
    first_owner: Any = None,
    partner_status: Any,
) -> list[Any]:
    """The same columns, in the same order, for every part of the union."""

    def col(value: Any, name: str, type_: Any) -> Any:
        if value is None:
            value = sa.cast(sa.null(), type_)
        return value.label(name)

    return [
        sa.literal(kind, sa.String).label("kind"),
        program_id.label("program_id"),
        col(customer_id, "customer_id", sa.String),
        col(deal_id, "deal_id", sa.String),
        col(code, "code", sa.String),
        id.label("id"),
        col(seq, "seq", sa.BigInteger),
        partner_id.label("partner_id"),
        col(at, "at", Click.__table__.c.clicked_at.type),
        col(role, "role", sa.String),
        col(bot, "bot", sa.Boolean),
        col(duplicate, "duplicate", sa.Boolean),
        col(velocity, "velocity", sa.Boolean),
        col(revoked, "revoked", sa.Boolean),
        col(owned, "owned", sa.Boolean),
        col(first_owner, "first_owner", sa.String),
        col(partner_status, "partner_status", sa.String),
    ]


def _clicks_of_customers(program_id: str, customers: list[str]) -> sa.Select[Any]:
    """Click ids bound to each customer directly, or carried by a visitor bound to the
    customer; the latter with the customer that bound the click first (first bind wins)."""
    direct = sa.select(
        IdentityEdge.customer_id.label("owner"),
        IdentityEdge.click_id.label("click_id"),
        sa.true().label("owned"),
        sa.cast(sa.null(), sa.String).label("first_owner"),
    ).where(
        IdentityEdge.program_id == program_id,
        IdentityEdge.customer_id.in_(customers),
        IdentityEdge.status == "bound",
        IdentityEdge.click_id.is_not(None),
    )
    visitor, carrier, binder = (aliased(IdentityEdge) for _ in range(3))
    first_owner = (
        sa.select(binder.customer_id)
        .where(
            binder.program_id == program_id,
            binder.click_id == carrier.click_id,
            binder.customer_id.is_not(None),
            binder.status == "bound",
        )
        .order_by(binder.seq)
        .limit(1)
        .scalar_subquery()
    )
    carried = sa.select(
        visitor.customer_id.label("owner"),
        carrier.click_id.label("click_id"),
        sa.false().label("owned"),
        first_owner.label("first_owner"),
    ).where(
        visitor.program_id == program_id,
        visitor.customer_id.in_(customers),
        visitor.status == "bound",
        visitor.visitor_id.is_not(None),
        carrier.program_id == program_id,
        carrier.visitor_id == visitor.visitor_id,
        carrier.customer_id.is_(None),
        carrier.click_id.is_not(None),
    )
    found = sa.union_all(direct, carried).subquery("found")
    return (
        sa.select(
            *_columns(
                "click",
                program_id=sa.literal(program_id, sa.String),
                customer_id=found.c.owner,
                id=Click.id,
                seq=Click.seq,
                partner_id=Click.partner_id,
                at=Click.clicked_at,
                bot=Click.bot,
                duplicate=Click.duplicate,
                velocity=Click.velocity,
                revoked=Click.revoked,
                owned=found.c.owned,
                first_owner=found.c.first_owner,
                partner_status=Partner.status,
            )
        )
        .select_from(found)
        .join(Click, Click.id == found.c.click_id)
        .outerjoin(Partner, Partner.id == Click.partner_id)
    )


def _touchpoints_of(program_id: str, customers: list[str], deals: list[str]) -> sa.Select[Any]:
    conditions = []
    if customers:
        conditions.append(Touchpoint.customer_id.in_(customers))
    if deals:
        conditions.append(Touchpoint.deal_id.in_(deals))
    return (
        sa.select(
            *_columns(
                "touchpoint",
                program_id=Touchpoint.program_id,
                customer_id=Touchpoint.customer_id,
                deal_id=Touchpoint.deal_id,
                id=Touchpoint.id,
                seq=Touchpoint.seq,
                partner_id=Touchpoint.partner_id,
                at=Touchpoint.occurred_at,
                role=Touchpoint.type,
                partner_status=Partner.status,
            )
        )
        .outerjoin(Partner, Partner.id == Touchpoint.partner_id)
        .where(Touchpoint.program_id == program_id, sa.or_(*conditions))
    )


def _coupons_of(program_id: str, codes: list[str]) -> sa.Select[Any]:
    return (
        sa.select(
            *_columns(
                "coupon",
                program_id=PromotionCode.program_id,
                code=PromotionCode.code,
                id=PromotionCode.id,
                partner_id=PromotionCode.partner_id,
                partner_status=Partner.status,
            )
        )
        .outerjoin(Partner, Partner.id == PromotionCode.partner_id)
        .where(
            PromotionCode.program_id == program_id,
            PromotionCode.code.in_(codes),
            PromotionCode.active.is_(True),
        )
    )
