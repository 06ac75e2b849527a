"""Set-based commission sync: bring the commissions of many events in line at once.

The per-event path (``service.sync_event``) costs about twelve statements an event, most of them
ORM flushes: a replay rewriting 100,000 sales spent 98 % of its time there. This path does the
same work for thousands of events per round trip:

1. read, per chunk of events, their facts (type, time, amount, customer), every partner's share
   (the sum of its attribution rows, and of their weights), the refunds of the sales, when each
   customer's first event of the type happened (only when a rule needs it), the existing
   commissions (locked, on PostgreSQL) and their adjustments;
2. compute the targets in Python with the pure rules (``rules.earnings``, ``rules.after_refunds``),
   the very functions the per-event path calls, so the two round and split alike by
   construction (and ``tests/test_commissions_bulk.py`` holds them equal on varied programs);
3. decide per (event, partner) exactly as ``service._sync`` / ``service._reconcile`` do: create,
   adjust in place, reverse, reopen, or book an :class:`Adjustment` for money that has moved;
4. write the new commissions, the updates, the adjustments, the audit rows and the ledger legs
   in a handful of bulk statements (steps 3 and 4: ``bulk_writes.py``).

Shares come either from rows in hand (the per-event replay derives them in Python) or from SQL
(:func:`sync_where`: the set-based replay's ``replay_rows``, before it touches ``attributions``,
so the commission work is done before the replay takes its table locks).
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.commissions.bulk_writes import Facts as Facts
from openpartner.commissions.bulk_writes import Writes, create, reconcile, write
from openpartner.commissions.models import (
    Adjustment,
    Commission,
    CommissionRuleVersion,
)
from openpartner.commissions.rules import Earning, Rule, Share, after_refunds, earnings
from openpartner.commissions.rulesets import matures_at
from openpartner.core.time import utc_now
from openpartner.db import bulk
from openpartner.db.base import UTCDateTime
from openpartner.events.models import Event
from openpartner.programs.models import Program

log = logging.getLogger(__name__)
CHUNK = 5_000
"""Events per round of reads and writes: lists of ids stay well under SQLite's parameter limit."""
_COMMISSIONS = cast(sa.Table, Commission.__table__)


Key = tuple[str, str]  # (partner, currency)


@dataclass
class Effect:
    """Per partner and currency, what the synced events' commissions owe before and after
    (amount, or nothing when reversed, plus adjustments): the commission side of a replay."""

    totals: dict[Key, list[int]] = field(default_factory=dict)
    events: int = 0
    """Events whose commissions changed (or would)."""

    def add(self, key: Key, before: int, after: int) -> None:
        pair = self.totals.setdefault(key, [0, 0])
        pair[0] += before
        pair[1] += after


class RuleBook:
    """A program's rule versions in memory: the one in force at any time by bisection, as
    ``rulesets.version_at`` answers it (the latest effective at or before; ties: the newest)."""

    def __init__(self, session: Session, program_id: str) -> None:
        versions = list(
            session.scalars(
                sa.select(CommissionRuleVersion)
                .where(CommissionRuleVersion.program_id == program_id)
                .order_by(CommissionRuleVersion.effective_from, CommissionRuleVersion.seq)
            )
        )
        self._starts = [v.effective_from for v in versions]
        self._versions = [(v.id, [Rule.from_dict(r) for r in v.rules]) for v in versions]
        self._by_id = {v.id: v for v in versions}
        # Whether any rule looks at the customer's first event (first-only, or a duration).
        self.needs_first = any(
            r.recurrence == "first" or r.max_months is not None
            for _, rules in self._versions
            for r in rules
        )

    def at(self, when: datetime) -> tuple[str, list[Rule]] | None:
        i = bisect.bisect_right(self._starts, when)
        return self._versions[i - 1] if i else None

    def matures_at(self, version_id: str | None, occurred_at: datetime) -> datetime:
        """As ``service._matures_at``: under the version that priced the event."""
        version = self._by_id.get(version_id) if version_id is not None else None
        if version is None:
            raise ValueError(f"no commission rules in force at {occurred_at}")
        return matures_at(version, occurred_at)


def sync(
    session: Session,
    program: Program,
    events: Sequence[Facts],
    shares: Mapping[str, Mapping[str, Share]],
    *,
    book: RuleBook | None = None,
    dry_run: bool = False,
    effect: Effect | None = None,
) -> None:
    """Bring the commissions of ``events`` (sales, leads …, never refunds) of ``program`` in
    line with ``shares`` (per event, per partner: the sum of its attribution rows), as
    ``service.sync_event`` would one by one. With ``dry_run``, writes nothing and only adds to
    ``effect``."""
    book = book or RuleBook(session, program.id)
    for start in range(0, len(events), CHUNK):
        _sync_chunk(session, program, book, events[start : start + CHUNK], shares, dry_run, effect)


def shares_of_rows(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Share]]:
    """Shares from attribution rows (column values, as ``attribution.service.attribute`` makes
    them)."""
    out: dict[str, dict[str, Share]] = defaultdict(dict)
    for row in rows:
        by_partner = out[row["event_id"]]
        old = by_partner.get(row["partner_id"])
        weight = Fraction(row["weight"])
        by_partner[row["partner_id"]] = (
            Share(row["amount"], weight)
            if old is None
            else Share(old.amount + row["amount"], old.weight + weight)
        )
    return out


SYNC_TABLE = "commission_sync"
"""The temporary table :func:`sync_where` reads the events to sync from (``event_id``)."""


def sync_where(
    session: Session,
    program: Program,
    events_sql: str,
    shares_sql: str,
    params: Mapping[str, Any],
    *,
    dry_run: bool = False,
    effect: Effect | None = None,
) -> int:
    """:func:`sync` for the events ``events_sql`` selects (one column, event ids), with the
    shares ``shares_sql`` selects (``event_id, partner_id, weight, k, amount``: ``k`` rows of
    that weight summing to ``amount``; it may join ``commission_sync``, the events to sync).
    Returns how many events it looked at."""
    run = _runner(session, params)
    run(f"DROP TABLE IF EXISTS {SYNC_TABLE}")
    run(
        f"""CREATE TEMPORARY TABLE {SYNC_TABLE} AS
        SELECT e.seq, e.id AS event_id FROM events e
        WHERE e.id IN ({events_sql}) AND e.type <> 'refund'"""
    )
    run(f"CREATE INDEX {SYNC_TABLE}_seq ON {SYNC_TABLE} (seq)")
    run(f"ANALYZE {SYNC_TABLE}")
    seqs = list(run(f"SELECT seq FROM {SYNC_TABLE} ORDER BY seq").scalars())
    book = RuleBook(session, program.id)
    # Everything the chunks read, made once (one hash join, one aggregate) and read by ranges
    # of an index: a chunk joining the shares itself would aggregate all of them each time.
    run(f"DROP TABLE IF EXISTS {SYNC_TABLE}_rows")
    run(
        f"""CREATE TEMPORARY TABLE {SYNC_TABLE}_rows AS
        SELECT w.seq, e.id, e.type, e.customer_id, e.occurred_at, e.amount, e.currency,
               s.partner_id, s.weight, s.k, s.amount AS share
        FROM {SYNC_TABLE} w JOIN events e ON e.id = w.event_id
        LEFT JOIN ({shares_sql}) s ON s.event_id = w.event_id"""
    )
    run(f"CREATE INDEX {SYNC_TABLE}_rows_seq ON {SYNC_TABLE}_rows (seq)")
    run(f"ANALYZE {SYNC_TABLE}_rows")
    select = sa.text(
        f"""SELECT * FROM {SYNC_TABLE}_rows WHERE seq >= :low AND seq <= :high ORDER BY seq"""
    ).columns(occurred_at=UTCDateTime())
    for start in range(0, len(seqs), CHUNK):
        chunk = seqs[start : start + CHUNK]
        facts: dict[str, Facts] = {}
        shares: dict[str, dict[str, Share]] = defaultdict(dict)
        for row in session.execute(select, {**params, "low": chunk[0], "high": chunk[-1]}):
            if row.id not in facts:
                facts[row.id] = Facts(
                    row.id,
                    row.seq,
                    row.type,
                    row.customer_id,
                    row.occurred_at,
                    row.amount,
                    row.currency,
                )
            if row.partner_id is None:
                continue
            weight = Fraction(row.weight) * row.k
            old = shares[row.id].get(row.partner_id)
            shares[row.id][row.partner_id] = (
                Share(int(row.share), weight)
                if old is None
                else Share(old.amount + int(row.share), old.weight + weight)
            )
        _sync_chunk(session, program, book, list(facts.values()), shares, dry_run, effect)
    run(f"DROP TABLE {SYNC_TABLE}")
    run(f"DROP TABLE {SYNC_TABLE}_rows")
    return len(seqs)


def _runner(session: Session, params: Mapping[str, Any]) -> Any:
    def run(sql: str) -> sa.Result[Any]:
        return session.execute(sa.text(sql), dict(params))

    return run


def _sync_chunk(
    session: Session,
    program: Program,
    book: RuleBook,
    events: Sequence[Facts],
    shares: Mapping[str, Mapping[str, Share]],
    dry_run: bool,
    effect: Effect | None,
) -> None:
    if not events:
        return
    pg = bulk.is_postgresql(session)
    ids = [e.id for e in events]
    refunded = _refunded(session, ids, pg)
    first = _first_events(session, program.id, events, pg) if book.needs_first else {}
    existing: dict[str, dict[str, Any]] = defaultdict(dict)
    # Rows, not ORM objects: loading a million objects costs more than the whole sync.
    stmt = sa.select(*(_COMMISSIONS.c[c] for c in _READ)).where(
        bulk.one_of(_COMMISSIONS.c.event_id, "ids", pg)
    )
    if not dry_run:
        # Read-then-write of money: lock the commissions (PostgreSQL), in id order as the
        # per-event path does, so the two never wait for each other in opposite orders.
        stmt = stmt.order_by(_COMMISSIONS.c.id).with_for_update()
    for loaded in session.execute(stmt, {"ids": ids}):
        existing[loaded.event_id][loaded.partner_id] = loaded
    adjusted = _adjusted(session, [c.id for by in existing.values() for c in by.values()], pg)
    writes = Writes(utc_now())
    for event in events:
        targets, version_id = _targets(event, shares.get(event.id, {}), book, refunded, first)
        mine = existing.get(event.id, {})
        changed = False
        for partner_id in sorted(set(targets) | set(mine)):
            target = targets.get(partner_id)
            commission = mine.get(partner_id)
            if commission is None:
                if target is not None and target.amount > 0:
                    changed = True
                    create(
                        writes,
                        book.matures_at(version_id, event.occurred_at),
                        program,
                        event,
                        partner_id,
                        target,
                        version_id,
                    )
                    if effect is not None:
                        effect.add((partner_id, target.currency), 0, target.amount)
                continue
            moved = adjusted.get(commission.id, 0)
            before = (0 if commission.status == "reversed" else commission.amount) + moved
            if target is not None and target.currency != commission.currency:
                log.warning(
                    "commission %s stays in %s: the rules now pay %s",
                    commission.id,
                    commission.currency,
                    target.currency,
                )
                after = before
            else:
                after = reconcile(writes, event, commission, target, version_id, moved)
            if effect is not None:
                effect.add((partner_id, commission.currency), before, after)
            changed = changed or after != before
        if effect is not None and changed:
            effect.events += 1
    if not dry_run:
        write(session, writes)


def _targets(
    event: Facts,
    shares: Mapping[str, Share],
    book: RuleBook,
    refunded: Mapping[str, int],
    first: Mapping[tuple[str, str], tuple[str, datetime]],
) -> tuple[dict[str, Earning], str | None]:
    """``service.targets_for``, from facts read in bulk."""
    if not shares:
        return {}, None
    version = book.at(event.occurred_at)
    if version is None:
        return {}, None
    version_id, rules = version
    first_at = None
    if event.customer_id:
        known = first.get((event.customer_id, event.type))
        if known is not None and known[0] != event.id:
            first_at = known[1]
    gross = earnings(
        rules,
        event_type=event.type,
        currency=event.currency,
        occurred_at=event.occurred_at,
        first_at=first_at,
        shares=shares,
    )
    back = refunded.get(event.id, 0)
    if back:
        gross = {
            p: Earning(
                after_refunds(e.amount, event.amount or 0, back), e.currency, e.base_amount, e.rule
            )
            for p, e in gross.items()
        }
    return gross, version_id


_READ = (
    "id",
    "program_id",
    "event_id",
    "partner_id",
    "currency",
    "payout_id",
    "status",
    "amount",
    "reversed_by",
    "reason",
    "base_amount",
    "rule_version_id",
)


def _refunded(session: Session, ids: Sequence[str], pg: bool) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for sale_id, amount in session.execute(
        sa.select(Event.refund_of, Event.amount).where(
            bulk.one_of(Event.refund_of, "ids", pg), Event.type == "refund"
        ),
        {"ids": list(ids)},
    ):
        out[str(sale_id)] += amount or 0
    return out


def _first_events(
    session: Session, program_id: str, events: Sequence[Facts], pg: bool
) -> dict[tuple[str, str], tuple[str, datetime]]:
    """Per (customer, event type) of ``events``: the customer's first event of the type (id,
    time), as ``service._first_at`` orders them."""
    customers = sorted({e.customer_id for e in events if e.customer_id})
    if not customers:
        return {}
    out: dict[tuple[str, str], tuple[str, datetime]] = {}
    rows = session.execute(
        sa.select(Event.customer_id, Event.type, Event.id, Event.occurred_at)
        .where(Event.program_id == program_id, bulk.one_of(Event.customer_id, "ids", pg))
        .order_by(Event.customer_id, Event.type, Event.occurred_at, Event.seq),
        {"ids": customers},
    )
    for customer_id, type_, id_, at in rows:
        out.setdefault((str(customer_id), type_), (id_, at))
    return out


def _adjusted(session: Session, commission_ids: Sequence[str], pg: bool) -> dict[str, int]:
    if not commission_ids:
        return {}
    out: dict[str, int] = defaultdict(int)
    for commission_id, amount in session.execute(
        sa.select(Adjustment.commission_id, Adjustment.amount).where(
            bulk.one_of(Adjustment.commission_id, "ids", pg)
        ),
        {"ids": list(commission_ids)},
    ):
        out[str(commission_id)] += amount
    return out
