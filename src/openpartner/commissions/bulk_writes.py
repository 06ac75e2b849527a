"""The writing half of the set-based commission sync (``bulk.py``): what one chunk of events
changes, decided per (event, partner) exactly as ``service._sync`` / ``service._reconcile``
decide it, gathered in :class:`Writes` and written in a handful of bulk statements."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.commissions.models import Adjustment, Commission, CommissionAudit
from openpartner.commissions.rules import Earning
from openpartner.commissions.service import ATTRIBUTION_ACTOR
from openpartner.core.ids import new_ids
from openpartner.db import bulk
from openpartner.ledger import accounts
from openpartner.ledger.service import post_many
from openpartner.programs.models import Program

_COMMISSIONS = cast(sa.Table, Commission.__table__)
_AUDIT = cast(sa.Table, CommissionAudit.__table__)
_ADJUSTMENTS = cast(sa.Table, Adjustment.__table__)


@dataclass(frozen=True, slots=True)
class Facts:
    """An event as its commissions see it."""

    id: str
    seq: int
    type: str
    customer_id: str | None
    occurred_at: datetime
    amount: int | None
    currency: str | None


@dataclass
class Writes:
    """Everything one chunk writes, in bulk."""

    now: datetime
    new: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    """State and amount of existing commissions (one statement shape)."""
    explains: list[dict[str, Any]] = field(default_factory=list)
    """Their explanation: base amount, rule, rule version."""
    adjustments: list[dict[str, Any]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)
    moves: list[tuple[str, dict[str, Any], int, str, str]] = field(default_factory=list)
    """(kind, references, amount, debit account, credit account)."""

    def state(
        self,
        commission_id: str,
        status: str,
        amount: int,
        reversed_at: datetime | None,
        reversed_by: str | None,
        reason: str | None,
    ) -> None:
        self.updates.append(
            {
                "id": commission_id,
                "status": status,
                "amount": amount,
                "reversed_at": reversed_at,
                "reversed_by": reversed_by,
                "reason": reason,
                "updated_at": self.now,
            }
        )

    def explain(self, commission_id: str, target: Earning, version_id: str | None) -> None:
        self.explains.append(
            {
                "id": commission_id,
                "base_amount": target.base_amount,
                "rule": target.rule.as_dict(),
                "rule_version_id": version_id,
                "updated_at": self.now,
            }
        )

    def audit(
        self,
        commission_id: str,
        action: str,
        from_status: str | None,
        to_status: str,
        delta: int,
        reason: str | None = None,
    ) -> None:
        self.audits.append(
            {
                "commission_id": commission_id,
                "action": action,
                "from_status": from_status,
                "to_status": to_status,
                "amount_delta": delta,
                "actor": ATTRIBUTION_ACTOR,
                "reason": reason,
                "at": self.now,
            }
        )


def create(
    writes: Writes,
    matures_at: datetime,
    program: Program,
    event: Facts,
    partner_id: str,
    target: Earning,
    version_id: str | None,
) -> None:
    """``service._create``: a pending commission and its accrual."""
    row = {
        "id": "",  # made in bulk when written
        "program_id": program.id,
        "partner_id": partner_id,
        "event_id": event.id,
        "event_type": event.type,
        "amount": target.amount,
        "currency": target.currency,
        "base_amount": target.base_amount,
        "rule_version_id": version_id,
        "rule": target.rule.as_dict(),
        "status": "pending",
        "matures_at": matures_at,
        "created_at": writes.now,
        "updated_at": writes.now,
    }
    writes.new.append(row)
    refs = _refs(program.id, partner_id, target.currency, row, event.id)
    writes.moves.append(("accrual", refs, target.amount, accounts.EXPENSE, accounts.PENDING))
    writes.audits.append(
        {
            "commission_id": row,  # resolved to the id when written
            "action": "accrued",
            "from_status": None,
            "to_status": "pending",
            "amount_delta": target.amount,
            "actor": ATTRIBUTION_ACTOR,
            "reason": None,
            "at": writes.now,
        }
    )


def _refs(
    program_id: str,
    partner_id: str,
    currency: str,
    commission: dict[str, Any] | str,
    event_id: str,
) -> dict[str, Any]:
    return {
        "program_id": program_id,
        "partner_id": partner_id,
        "currency": currency,
        "commission_id": commission,
        "event_id": event_id,
        "adjustment_id": None,
    }


def reconcile(
    writes: Writes,
    event: Facts,
    c: Any,
    target: Earning | None,
    version_id: str | None,
    adjusted: int,
) -> int:
    """``service._reconcile`` for a change of attribution; returns what the commission owes
    after it (amount, or nothing when reversed, plus adjustments)."""
    amount = target.amount if target is not None else 0
    refs = _refs(c.program_id, c.partner_id, c.currency, c.id, event.id)
    if c.status == "reversed":
        if c.reversed_by == ATTRIBUTION_ACTOR and amount > 0 and target is not None:
            writes.state(c.id, "pending", amount, None, None, None)
            writes.explain(c.id, target, version_id)
            writes.moves.append(("accrual", refs, amount, accounts.EXPENSE, accounts.PENDING))
            writes.audit(c.id, "reopened", "reversed", "pending", amount)
            return amount + adjusted
        return adjusted
    delta: int = amount - (int(c.amount) + adjusted)
    moved = c.status == "paid" or c.payout_id is not None
    if delta == 0:
        # The rule follows from the version, the event type and the partner: it changes only
        # with them (so the stored rule is not read back, a JSON document per commission).
        if (
            target is not None
            and not moved
            and (c.base_amount, c.rule_version_id) != (target.base_amount, version_id)
        ):
            writes.explain(c.id, target, version_id)
        return int(c.amount) + adjusted
    if moved or adjusted:
        writes.adjustments.append(
            {
                "id": "",
                "program_id": c.program_id,
                "partner_id": c.partner_id,
                "amount": delta,
                "currency": c.currency,
                "reason": "attribution",
                "commission_id": c.id,
                "event_id": event.id,
                "source_payout_id": None,
                "payout_id": None,
                "actor": ATTRIBUTION_ACTOR,
                "created_at": writes.now,
            }
        )
        adjustment = writes.adjustments[-1]
        writes.moves.append(
            (
                "adjustment",
                {**refs, "adjustment_id": adjustment},
                delta,
                accounts.EXPENSE,
                accounts.APPROVED,
            )
        )
        writes.audit(c.id, "adjusted_after_payment", c.status, c.status, delta)
        return int(c.amount) + adjusted + delta
    kind = "accrual" if delta > 0 else "reversal"
    writes.moves.append((kind, refs, delta, accounts.EXPENSE, accounts.liability_for(c.status)))
    if amount == 0:
        writes.state(
            c.id, "reversed", c.amount, writes.now, ATTRIBUTION_ACTOR, "Attribution moved."
        )
        writes.audit(c.id, "reversed", c.status, "reversed", delta, "Attribution moved.")
        return 0
    writes.state(c.id, c.status, amount, None, None, c.reason)
    if target is not None:
        writes.explain(c.id, target, version_id)
    writes.audit(c.id, "adjusted", c.status, c.status, delta, "attribution")
    return amount


def write(session: Session, writes: Writes) -> None:
    for row, id_ in zip(writes.new, new_ids("com", len(writes.new)), strict=True):
        row["id"] = id_
    for row, id_ in zip(writes.adjustments, new_ids("adj", len(writes.adjustments)), strict=True):
        row["id"] = id_
    for audit, id_ in zip(writes.audits, new_ids("aud", len(writes.audits)), strict=True):
        audit["id"] = id_
        if isinstance(audit["commission_id"], dict):
            audit["commission_id"] = audit["commission_id"]["id"]
    bulk.copy_rows(session, _COMMISSIONS, writes.new)
    bulk.copy_rows(session, _ADJUSTMENTS, writes.adjustments)
    if writes.updates or writes.explains:
        # The ORM must not write its stale copies over these rows later.
        session.flush()
        bulk.update_rows(session, _COMMISSIONS, "id", writes.updates)
        bulk.update_rows(session, _COMMISSIONS, "id", writes.explains)
        updated = {u["id"] for u in writes.updates} | {u["id"] for u in writes.explains}
        for loaded in list(session.identity_map.values()):
            if isinstance(loaded, Commission) and loaded.id in updated:
                session.expire(loaded)
    bulk.copy_rows(session, _AUDIT, writes.audits)
    moves = []
    for kind, refs, amount, debit, credit in writes.moves:
        resolved = {k: (v["id"] if isinstance(v, dict) else v) for k, v in refs.items()}
        moves.append((kind, resolved, amount, debit, credit))
    post_many(session, ATTRIBUTION_ACTOR, moves, writes.now)
