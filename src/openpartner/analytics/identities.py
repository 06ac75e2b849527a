"""Every customer's clicks at once, for views over a whole program.

Same rules as ``identity/service.py:clicks_of_customer`` (tested against it), read from one
query over the program's identity log instead of several queries per customer: a customer's
clicks are those bound to it directly, plus those carried by a visitor bound to it unless the
click's first bind went to another customer.
"""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.identity.models import IdentityEdge


def clicks_by_customer(session: Session, program_id: str) -> dict[str, set[str]]:
    edges = session.execute(
        sa.select(
            IdentityEdge.click_id,
            IdentityEdge.visitor_id,
            IdentityEdge.customer_id,
            IdentityEdge.status,
        )
        .where(IdentityEdge.program_id == program_id)
        .order_by(IdentityEdge.seq)
    )
    direct: dict[str, set[str]] = defaultdict(set)
    visitors: dict[str, set[str]] = defaultdict(set)
    carried: dict[str, set[str]] = defaultdict(set)
    first_owner: dict[str, str] = {}
    for click_id, visitor_id, customer_id, status in edges:
        if customer_id is not None and status == "bound":
            if click_id:
                direct[customer_id].add(click_id)
                first_owner.setdefault(click_id, customer_id)
            if visitor_id is not None:
                visitors[customer_id].add(visitor_id)
        if customer_id is None and click_id and visitor_id is not None:
            carried[visitor_id].add(click_id)
    out: dict[str, set[str]] = {}
    for customer_id in set(direct) | set(visitors):
        owned = direct.get(customer_id, set())
        via = {c for v in visitors.get(customer_id, ()) for c in carried.get(v, ())}
        out[customer_id] = owned | {
            c for c in via - owned if first_owner.get(c, customer_id) == customer_id
        }
    return out
