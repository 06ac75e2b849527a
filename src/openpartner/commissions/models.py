"""Commission rules (effective-dated versions), commissions, their audit trail, and the
adjustments booked when money that has already moved must change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from openpartner.clicks.models import SeqType
from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType, JSONType, Timestamps

STATUSES = ("pending", "approved", "paid", "reversed", "held")


class CommissionRuleVersion(Base):
    """One complete, immutable set of a program's commission rules. The version in force for an
    event is the latest whose ``effective_from`` is at or before the event's time; changing the
    rules means adding a version, so any commission can be recomputed and explained."""

    __tablename__ = "commission_rule_versions"
    __table_args__ = (
        sa.Index(
            "ix_commission_rule_versions_program_id_effective_from", "program_id", "effective_from"
        ),
    )

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    """Creation order: of two versions effective at the same instant, the later one wins."""
    id: Mapped[str] = mapped_column(IdType, unique=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    effective_from: Mapped[datetime]
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    """``commissions.rules.Rule`` records as JSON (see ``commissions/schemas.py:RuleIn``)."""
    holding_days: Mapped[int]
    """Days after an event before its commissions mature (may be approved without saying
    ``early``). The one source of truth for the holding period: a commission matures at its
    event's time plus this, from the version in force at the event's time, so every partner of
    an event matures together however late their commission is created."""
    created_by: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)


class Commission(Timestamps, Base):
    """What one partner earns for one event. Keyed by (event, partner), never by attribution
    rows (those are rewritten when an event is re-derived)."""

    __tablename__ = "commissions"
    __table_args__ = (
        sa.UniqueConstraint("event_id", "partner_id"),
        sa.Index("ix_commissions_program_id_status", "program_id", "status"),
        sa.Index("ix_commissions_partner_id_status", "partner_id", "status"),
    )

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    partner_id: Mapped[str] = mapped_column(sa.ForeignKey("partners.id"))
    event_id: Mapped[str] = mapped_column(IdType)
    event_type: Mapped[str] = mapped_column(sa.String(64))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    """Minor units of ``currency`` currently accrued (for ``paid``: the amount paid; later
    changes are :class:`Adjustment` rows). A ``reversed`` commission owes nothing."""
    currency: Mapped[str] = mapped_column(sa.String(3))
    base_amount: Mapped[int] = mapped_column(sa.BigInteger)
    """The partner's attributed share of the event the rule was applied to (minor units of the
    event's currency; 0 for events without an amount)."""
    rule_version_id: Mapped[str | None] = mapped_column(IdType)
    rule: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """The rule that produced the amount: the explanation of the commission."""
    status: Mapped[str] = mapped_column(sa.String(16))
    matures_at: Mapped[datetime]
    """End of the holding period: the event's time + ``holding_days`` of the rule version in
    force at that time (``rulesets.matures_at``), the same for every partner of the event.
    Approval gate, unless an operator approves early with a reason."""
    approved_at: Mapped[datetime | None]
    paid_at: Mapped[datetime | None]
    reversed_at: Mapped[datetime | None]
    reversed_by: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    payout_id: Mapped[str | None] = mapped_column(IdType, index=True)
    """The payout that currently claims this commission; released (null) if that payout fails."""


class CommissionAudit(Base):
    """Every transition of a commission: who, when, why, and by how much."""

    __tablename__ = "commission_audit"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    """Order of the trail (ids made within one millisecond do not sort by time)."""
    id: Mapped[str] = mapped_column(IdType, unique=True)
    commission_id: Mapped[str] = mapped_column(IdType, index=True)
    action: Mapped[str] = mapped_column(sa.String(32))
    from_status: Mapped[str | None] = mapped_column(sa.String(16))
    to_status: Mapped[str] = mapped_column(sa.String(16))
    amount_delta: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    actor: Mapped[str] = mapped_column(sa.String(64))
    """An API key id, ``system:<cause>`` or ``job:<kind>``."""
    reason: Mapped[str | None] = mapped_column(sa.Text)
    at: Mapped[datetime] = mapped_column(default=utc_now)


class Adjustment(Base):
    """A signed change to a partner's approved balance, carried into the next payout: a refund
    or re-derivation that changes money already paid (or in flight), or a transfer reversal."""

    __tablename__ = "adjustments"
    __table_args__ = (sa.Index("ix_adjustments_partner_id_currency", "partner_id", "currency"),)

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    partner_id: Mapped[str] = mapped_column(sa.ForeignKey("partners.id"))
    amount: Mapped[int] = mapped_column(sa.BigInteger)
    """Signed minor units: negative is a clawback netted against the next payout."""
    currency: Mapped[str] = mapped_column(sa.String(3))
    reason: Mapped[str] = mapped_column(sa.String(64))
    """``refund``, ``attribution``, ``transfer_reversed`` …"""
    commission_id: Mapped[str | None] = mapped_column(IdType, index=True)
    event_id: Mapped[str | None] = mapped_column(IdType)
    """The event that caused it (a refund, a re-derived sale)."""
    source_payout_id: Mapped[str | None] = mapped_column(IdType)
    """For ``transfer_reversed``: the payout whose transfer was (partly) reversed."""
    payout_id: Mapped[str | None] = mapped_column(IdType, index=True)
    """The payout that currently claims it; null while it waits for the next run."""
    actor: Mapped[str] = mapped_column(sa.String(64))
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
