"""Gather the touches of conversions from the database: the customer's clicks, the touchpoints
on the customer or deal, and the synthetic touch of a partner's promotion code.

Set-based: the touches of any number of conversions (a whole ingest batch) come back from one
query, so attributing a batch costs one round trip, not one per event."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.clicks.models import Click
from openpartner.coupons.models import PromotionCode
from openpartner.db.bulk import is_postgresql, one_of
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
    touches: list[list[TouchRecord]] = [[] for _ in events]
    if not (by_customer or by_deal or by_code):
        return touches
    # One statement per shape (which kinds of touch are asked for), built once; the values
    # are bound, so it compiles once per process and plans as a prepared statement. One
    # execution per program (a batch almost always has one).
    pg = is_postgresql(session)
    rows: list[Any] = []
    for program_id in sorted({p for p, _ in (*by_customer, *by_deal, *by_code)}):
        params: dict[str, Any] = {"program": program_id}
        for name, wanted in (("customers", by_customer), ("deals", by_deal), ("codes", by_code)):
            values = sorted(v for p, v in wanted if p == program_id)
            if values:
                params[name] = values
        shape = ("customers" in params, "deals" in params, "codes" in params)
        rows += session.execute(_touches_query(pg, *shape), params).all()
    seen_clicks: set[tuple[int, str]] = set()
    # Rows come clicks first, then touchpoints, then coupons, each in ingest order (per
    # program, and no event belongs to two programs).
    for row in rows:
        (kind, program_id, customer_id, deal_id, code, id_, seq, partner_id, at, role) = row[:10]
        (bot, duplicate, velocity, click_revoked, owned, first_owner, partner_status) = row[11:]
        revoked = partner_status == "revoked"
        if kind == "click":
            # A click reached through a visitor counts unless another customer bound it first.
            if not owned and first_owner not in (None, customer_id):
                continue
            touch = TouchRecord(
                id=id_,
                seq=seq,
                partner_id=partner_id,
                at=at,
                kind="click",
                role=None,
                flagged=bool(bot or duplicate or velocity),
                partner_revoked=bool(click_revoked) or revoked,
            )
            for i in by_customer.get((program_id, customer_id), ()):
                if (i, id_) not in seen_clicks:
                    seen_clicks.add((i, id_))
                    touches[i].append(touch)
        elif kind == "touchpoint":
            touch = TouchRecord(
                id=id_,
                seq=seq,
                partner_id=partner_id,
                at=at,
                kind="touchpoint",
                role=role,
                flagged=False,
                partner_revoked=revoked,
            )
            matched = set(by_customer.get((program_id, customer_id), ()))
            matched.update(by_deal.get((program_id, deal_id), ()))
            for i in sorted(matched):
                touches[i].append(touch)
        else:
            for i in by_code.get((program_id, code), ()):
                # Synthetic touch at the moment of the sale, clearly marked as a coupon.
                touches[i].append(
                    TouchRecord(
                        id=id_,
                        seq=0,
                        partner_id=partner_id,
                        at=events[i].occurred_at,
                        kind="coupon",
                        role="closer",
                        flagged=False,
                        partner_revoked=revoked,
                    )
                )
    return touches


_PROGRAM: sa.BindParameter[str] = sa.bindparam("program", type_=sa.String)
_EDGES = cast(sa.Table, IdentityEdge.__table__)
_CLICKS = cast(sa.Table, Click.__table__)
_TOUCHPOINTS = cast(sa.Table, Touchpoint.__table__)
_PROMOTION_CODES = cast(sa.Table, PromotionCode.__table__)
_PARTNERS = cast(sa.Table, Partner.__table__)


@cache
def _touches_query(pg: bool, customers: bool, deals: bool, codes: bool) -> sa.CompoundSelect[Any]:
    """One UNION ALL over the kinds of touch asked for."""
    parts: list[sa.Select[Any]] = []
    if customers:
        parts.append(_clicks_of_customers(pg))
    if customers or deals:
        parts.append(_touchpoints_of(pg, customers, deals))
    if codes:
        parts.append(_coupons_of(pg))
    return sa.union_all(*parts).order_by(sa.literal_column("rank"), sa.literal_column("seq"))


_RANKS = {"click": 1, "touchpoint": 2, "coupon": 3}


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
        sa.literal_column(f"'{kind}'", sa.String).label("kind"),
        program_id.label("program_id"),
        col(customer_id, "customer_id", sa.String),
        col(deal_id, "deal_id", sa.String),
        col(code, "code", sa.String),
        id.label("id"),
        col(seq, "seq", sa.BigInteger),
        partner_id.label("partner_id"),
        col(at, "at", _CLICKS.c.clicked_at.type),
        col(role, "role", sa.String),
        sa.literal_column(str(_RANKS[kind]), sa.Integer).label("rank"),
        col(bot, "bot", sa.Boolean),
        col(duplicate, "duplicate", sa.Boolean),
        col(velocity, "velocity", sa.Boolean),
        col(revoked, "revoked", sa.Boolean),
        col(owned, "owned", sa.Boolean),
        col(first_owner, "first_owner", sa.String),
        col(partner_status, "partner_status", sa.String),
    ]


def _clicks_of_customers(pg: bool) -> sa.Select[Any]:
    """Click ids bound to each customer directly, or carried by a visitor bound to the
    customer; the latter with the customer that bound the click first (first bind wins)."""
    edge = _EDGES
    direct = sa.select(
        edge.c.program_id,
        edge.c.customer_id.label("owner"),
        edge.c.click_id,
        sa.true().label("owned"),
        sa.cast(sa.null(), sa.String).label("first_owner"),
    ).where(
        edge.c.program_id == _PROGRAM,
        one_of(edge.c.customer_id, "customers", pg),
        edge.c.status == "bound",
        edge.c.click_id.is_not(None),
    )
    visitor, carrier, binder = (_EDGES.alias(name) for name in ("visitor", "carrier", "binder"))
    first_owner = (
        sa.select(binder.c.customer_id)
        .where(
            binder.c.program_id == carrier.c.program_id,
            binder.c.click_id == carrier.c.click_id,
            binder.c.customer_id.is_not(None),
            binder.c.status == "bound",
        )
        .order_by(binder.c.seq)
        .limit(1)
        .scalar_subquery()
    )
    carried = sa.select(
        visitor.c.program_id,
        visitor.c.customer_id.label("owner"),
        carrier.c.click_id,
        sa.false().label("owned"),
        first_owner.label("first_owner"),
    ).where(
        visitor.c.program_id == _PROGRAM,
        one_of(visitor.c.customer_id, "customers", pg),
        visitor.c.status == "bound",
        visitor.c.visitor_id.is_not(None),
        carrier.c.program_id == visitor.c.program_id,
        carrier.c.visitor_id == visitor.c.visitor_id,
        carrier.c.customer_id.is_(None),
        carrier.c.click_id.is_not(None),
    )
    found = sa.union_all(direct, carried).subquery("found")
    click, partner = _CLICKS, _PARTNERS
    return (
        sa.select(
            *_columns(
                "click",
                program_id=found.c.program_id,
                customer_id=found.c.owner,
                id=click.c.id,
                seq=click.c.seq,
                partner_id=click.c.partner_id,
                at=click.c.clicked_at,
                bot=click.c.bot,
                duplicate=click.c.duplicate,
                velocity=click.c.velocity,
                revoked=click.c.revoked,
                owned=found.c.owned,
                first_owner=found.c.first_owner,
                partner_status=partner.c.status,
            )
        )
        .select_from(found)
        .join(click, click.c.id == found.c.click_id)
        .outerjoin(partner, partner.c.id == click.c.partner_id)
    )


def _touchpoints_of(pg: bool, customers: bool, deals: bool) -> sa.Select[Any]:
    tp, partner = _TOUCHPOINTS, _PARTNERS
    conditions = []
    if customers:
        conditions.append(one_of(tp.c.customer_id, "customers", pg))
    if deals:
        conditions.append(one_of(tp.c.deal_id, "deals", pg))
    return (
        sa.select(
            *_columns(
                "touchpoint",
                program_id=tp.c.program_id,
                customer_id=tp.c.customer_id,
                deal_id=tp.c.deal_id,
                id=tp.c.id,
                seq=tp.c.seq,
                partner_id=tp.c.partner_id,
                at=tp.c.occurred_at,
                role=tp.c.type,
                partner_status=partner.c.status,
            )
        )
        .outerjoin(partner, partner.c.id == tp.c.partner_id)
        .where(tp.c.program_id == _PROGRAM, sa.or_(*conditions))
    )


def _coupons_of(pg: bool) -> sa.Select[Any]:
    code, partner = _PROMOTION_CODES, _PARTNERS
    return (
        sa.select(
            *_columns(
                "coupon",
                program_id=code.c.program_id,
                code=code.c.code,
                id=code.c.id,
                partner_id=code.c.partner_id,
                partner_status=partner.c.status,
            )
        )
        .outerjoin(partner, partner.c.id == code.c.partner_id)
        .where(
            code.c.program_id == _PROGRAM,
            one_of(code.c.code, "codes", pg),
            code.c.active.is_(True),
        )
    )
