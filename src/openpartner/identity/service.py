"""Identify (bind a click or visitor to a customer) and resolution (a customer's clicks).

Edges are pairs, each its own row: click↔customer, visitor↔customer, visitor↔click (a visitor
that carries a click) and customer↔email hash. A click or visitor binds to one customer: the
first bind wins; a later bind to another customer is stored with ``status='conflict'`` and
ignored. Customers are never merged with each other, not even through a shared email.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from openpartner.attribution.late_changes import hold_shared
from openpartner.clicks.models import Click
from openpartner.core.errors import NotFound, ValidationFailed
from openpartner.core.ids import new_id
from openpartner.identity.guards import check_identifier
from openpartner.identity.models import IdentityEdge
from openpartner.programs.models import Program
from openpartner.secrets import keyed_hash


@dataclass
class BindResult:
    new_binding: bool = False
    conflicts: list[dict[str, str]] = field(default_factory=list)


def email_hash(email: str) -> str:
    return keyed_hash(email.strip().lower(), purpose="email")


def _bound_customer(session: Session, program_id: str, column: Any, value: str) -> str | None:
    return session.scalar(
        sa.select(IdentityEdge.customer_id)
        .where(
            IdentityEdge.program_id == program_id,
            column == value,
            IdentityEdge.customer_id.is_not(None),
            IdentityEdge.status == "bound",
        )
        .order_by(IdentityEdge.seq)
        .limit(1)
    )


def _edge(
    session: Session, program_id: str, source: str, status: str = "bound", **ids: str | None
) -> None:
    session.add(
        IdentityEdge(id=new_id("idn"), program_id=program_id, source=source, status=status, **ids)
    )


def _bind_first(
    session: Session,
    program_id: str,
    source: str,
    customer_id: str,
    name: str,
    column: Any,
    value: str,
) -> str | None:
    """Bind ``value`` to the customer. ``None`` when this call bound it; otherwise a concurrent
    call bound it first (the partial unique index on bound edges let one win) and this is the
    customer it bound it to."""
    try:
        with session.begin_nested():
            _edge(session, program_id, source, customer_id=customer_id, **{name: value})
            session.flush()
    except IntegrityError:
        winner = _bound_customer(session, program_id, column, value)
        if winner is None:
            raise
        return winner
    return None


def bind(
    session: Session,
    program: Program,
    *,
    customer_id: str,
    click_id: str | None = None,
    visitor_id: str | None = None,
    email: str | None = None,
    hashed_email: str | None = None,
    source: str = "api",
) -> BindResult:
    """Record the edges of one identify call; services never commit. ``hashed_email`` is an
    ``email_hash`` made earlier, for callers that never keep the email itself (Stripe)."""
    customer_id = check_identifier(customer_id, "customer_id") or ""
    visitor_id = check_identifier(visitor_id, "visitor_id")
    click_id = check_identifier(click_id, "click_id")
    if click_id is not None:
        if not click_id.startswith("clk_"):
            raise ValidationFailed(f"{click_id!r} is not a click id.", code="invalid_click_id")
        program_of_click = session.scalar(sa.select(Click.program_id).where(Click.id == click_id))
        # A click the router has not flushed yet is accepted; one of another program is not.
        if program_of_click is not None and program_of_click != program.id:
            raise NotFound(f"Click {click_id} not found.", code="unknown_click")
    # Before the first edge: a replay starting now waits for this binding to commit, or sees
    # it as bound after its start and re-derives the customer (attribution/late_changes.py).
    hold_shared(session, [program.id])
    result = BindResult()
    for name, column, value in (
        ("click_id", IdentityEdge.click_id, click_id),
        ("visitor_id", IdentityEdge.visitor_id, visitor_id),
    ):
        if value is None:
            continue
        bound = _bound_customer(session, program.id, column, value)
        if bound is None:
            bound = _bind_first(session, program.id, source, customer_id, name, column, value)
            if bound is None:
                result.new_binding = True
                continue
        if bound != customer_id:
            _edge(session, program.id, source, "conflict", customer_id=customer_id, **{name: value})
            result.conflicts.append(
                {"identifier": name, "value": value, "bound_customer_id": bound}
            )
    if click_id is not None and visitor_id is not None:
        _edge(session, program.id, source, click_id=click_id, visitor_id=visitor_id)
    if email is not None:
        hashed_email = email_hash(email)
    if hashed_email is not None:
        _edge(session, program.id, source, customer_id=customer_id, email_hash=hashed_email)
    session.flush()
    return result


def clicks_of_customer(session: Session, program_id: str, customer_id: str) -> list[str]:
    """Click ids bound to the customer directly, or carried by a visitor bound to the customer,
    minus clicks bound to someone else (first bind wins)."""
    edges = IdentityEdge
    direct = sa.select(edges.click_id).where(
        edges.program_id == program_id,
        edges.customer_id == customer_id,
        edges.status == "bound",
        edges.click_id.is_not(None),
    )
    visitors = sa.select(edges.visitor_id).where(
        edges.program_id == program_id,
        edges.customer_id == customer_id,
        edges.status == "bound",
        edges.visitor_id.is_not(None),
    )
    carried = sa.select(edges.click_id).where(
        edges.program_id == program_id,
        edges.visitor_id.in_(visitors),
        edges.customer_id.is_(None),
        edges.click_id.is_not(None),
    )
    candidates = {c for c in session.scalars(sa.union(direct, carried)) if c}
    owned = set(session.scalars(direct))
    result = []
    for click_id in sorted(candidates):
        if click_id in owned:
            result.append(click_id)
            continue
        bound = _bound_customer(session, program_id, edges.click_id, click_id)
        if bound is None or bound == customer_id:
            result.append(click_id)
    return result
