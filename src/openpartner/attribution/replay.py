"""Replay: re-derive a program's history under another model or window.

A dry run reports, per partner and currency, the current total, the replayed total and the
difference, and writes nothing. Applying records a new config version effective from ``since``
(or the beginning) and replaces the attributions of every event from then on, in chunks, in the
caller's transaction; commissions follow (money already paid becomes an adjustment, never a
rewrite). Replaying twice under the same rules changes nothing.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.attribution.configs import BEGINNING, AttributionConfig, Rules, record_config
from openpartner.attribution.late_changes import ReplayGuard
from openpartner.attribution.models import parse_model
from openpartner.attribution.records import AttributionRow
from openpartner.attribution.service import (
    _ATTRIBUTIONS,
    ATTRIBUTED_TYPES_EXCLUDED,
    attribute,
    derive_events,
    lock_events,
    store,
)
from openpartner.attribution.set_replay import Steps, covers, replay_set_based
from openpartner.commissions import bulk as commission_sync
from openpartner.commissions.models import Adjustment, Commission
from openpartner.commissions.service import programs_with_commissions
from openpartner.db.bulk import is_postgresql, one_of
from openpartner.db.sums import combine, money_sum
from openpartner.deals.models import Deal
from openpartner.events.models import Event
from openpartner.programs.models import Program

CHUNK = 50_000
_EVENT_COLUMNS = (
    Event.seq,
    Event.id,
    Event.program_id,
    Event.type,
    Event.customer_id,
    Event.deal_id,
    Event.promotion_code,
    Event.occurred_at,
    Event.amount,
    Event.currency,
)


@dataclass
class PartnerDiff:
    partner_id: str
    currency: str | None
    current: int = 0
    replayed: int = 0

    @property
    def difference(self) -> int:
        return self.replayed - self.current


@dataclass
class ReplayReport:
    program_id: str
    model: str
    params: dict[str, Any]
    window_days: int
    since: datetime | None
    dry_run: bool
    events: int = 0
    changed_events: int = 0
    """Events whose credit changes: a partner's amount, or (an event shared by several
    partners) the weights of a partner's touches, as a lead's split moving does."""
    config_version: str | None = None
    late_events: int = 0
    """Events ingested, or whose customer was bound, while the replay ran: re-derived after its
    write, under the new rules (late_changes.py)."""
    seconds: float = 0.0
    steps: Steps = field(default_factory=Steps)
    """Seconds per database step of the set-based path (empty on the per-event path)."""
    partners: dict[tuple[str, str | None], PartnerDiff] = field(default_factory=dict)
    commissions: dict[tuple[str, str], PartnerDiff] = field(default_factory=dict)
    """Per partner and currency: what the events in scope owe in commissions now (amounts of
    live commissions plus their adjustments), and after the replay."""

    def moved(self) -> list[PartnerDiff]:
        """The (partner, currency) rows whose total the replay changes, in a stable order.
        Rows that stay the same are left out, among them every row of events without an amount
        (leads: currency null, always 0): their credit moving is counted in ``changed_events``."""
        return sorted(
            (d for d in self.partners.values() if d.difference != 0),
            key=lambda d: (d.partner_id, d.currency or ""),
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "program_id": self.program_id,
            "model": self.model,
            "params": self.params,
            "window_days": self.window_days,
            "since": self.since.isoformat() if self.since else None,
            "dry_run": self.dry_run,
            "events": self.events,
            "changed_events": self.changed_events,
            "config_version": self.config_version,
            "late_events": self.late_events,
            "seconds": round(self.seconds, 3),
            "steps": {name: round(seconds, 3) for name, seconds in self.steps.items()},
            "partners": [
                {
                    "partner_id": d.partner_id,
                    "currency": d.currency,
                    "current": d.current,
                    "replayed": d.replayed,
                    "difference": d.difference,
                }
                for d in self.moved()
            ],
            "commissions": [
                {
                    "partner_id": d.partner_id,
                    "currency": d.currency,
                    "current": d.current,
                    "replayed": d.replayed,
                    "difference": d.difference,
                }
                for d in sorted(self.commissions.values(), key=lambda d: (d.partner_id, d.currency))
            ],
        }


def replay(
    session: Session,
    program_id: str,
    *,
    model: str,
    params: dict[str, Any] | None = None,
    window_days: int | None = None,
    since: datetime | None = None,
    dry_run: bool = True,
    chunk: int = CHUNK,
) -> ReplayReport:
    started = time.perf_counter()
    program = session.get_one(Program, program_id)
    spec = parse_model(model, params or {})
    window = window_days or program.attribution_window_days
    report = ReplayReport(
        program_id=program_id,
        model=spec.name,
        params=spec.params_for_storage(),
        window_days=window,
        since=since,
        dry_run=dry_run,
    )
    rules = Rules(session)
    effective_from = since or BEGINNING
    config_id = None
    if dry_run:
        # The same rules resolution as applying, with the new version held in memory only.
        candidate = AttributionConfig(
            id=None,
            program_id=program_id,
            effective_from=effective_from,
            model=spec.name,
            params=spec.params_for_storage(),
            window_days=window,
            reason="replay",
        )
        rules.preload(program_id, [candidate])
    else:
        config = record_config(
            session,
            program_id=program_id,
            model=spec.name,
            params=spec.params_for_storage(),
            window_days=window,
            effective_from=effective_from,
            reason="replay",
        )
        program.attribution_model, program.attribution_params = spec.name, config.params
        program.attribution_window_days = window
        report.config_version = config_id = config.id
    pg = is_postgresql(session)
    # What sync_events would find out per chunk after loading every changed event: a program
    # with no commission rules and no commissions has no commissions to bring in line.
    ruled = bool(programs_with_commissions(session, [program_id]))
    # Commissions follow every change of attribution (flat rewards too: a lead's weights can
    # move with no amount moving), set-based; the dry run reports their effect.
    effect = commission_sync.Effect() if ruled else None
    book = commission_sync.RuleBook(session, program_id) if ruled else None
    current = _commission_totals(session, program_id, since) if ruled else {}
    set_based = covers(spec)
    # What this replay will not see: ingested or bound after it read (late_changes.py).
    guard = ReplayGuard.start(session, program_id) if not dry_run else None
    if set_based:
        # The new version is the newest, effective from ``since``: every event in scope is
        # under it, so the database derives them all at once (see set_replay.py).
        derived, changed, _ = replay_set_based(
            session,
            program_id=program_id,
            spec=spec,
            window_days=window,
            since=since,
            config_id=config_id,
            dry_run=dry_run,
            add_diff=lambda partner, currency, current, replayed: _add_diff(
                report, partner, currency, current, replayed
            ),
            want_ids=False,
            steps=report.steps,
            # Set-based, it writes at the end: no derivation of the program meanwhile. The
            # per-event path below writes chunk by chunk and never takes this lock (it would
            # stop ingest for the whole replay); each chunk locks its events instead.
            before_write=(lambda: guard.hold(session)) if guard is not None else None,
            # Before the write, so the table locks are held for the swap only.
            on_rewrite=(
                (lambda: _sync_replayed(session, program, dry_run, effect)) if ruled else None
            ),
        )
        report.events += derived
        report.changed_events += changed
    after = 0
    while True:
        stmt = (
            sa.select(*_EVENT_COLUMNS)
            .where(
                Event.program_id == program_id,
                Event.type.not_in(ATTRIBUTED_TYPES_EXCLUDED),
                Event.seq > after,
            )
            .order_by(Event.seq)
            .limit(chunk)
        )
        if since is not None:
            stmt = stmt.where(Event.occurred_at >= since)
        if set_based:
            # Left to this path: sales of deals with a model of their own.
            stmt = stmt.where(
                Event.deal_id.in_(
                    sa.select(Deal.id).where(Deal.model.is_not(None), Deal.model != spec.name)
                )
            )
        events = list(session.execute(stmt).all())
        if not events:
            break
        after = events[-1].seq
        report.events += len(events)
        _replay_chunk(session, events, rules, report, pg, program, book, effect)
    if guard is not None:
        late = guard.late_events(session)
        derive_events(session, late)
        report.late_events = len(late)
    if effect is not None:
        _report_commissions(report, current, effect)
    report.seconds = time.perf_counter() - started
    return report


def _replay_chunk(
    session: Session,
    events: list[Any],
    rules: Rules,
    report: ReplayReport,
    pg: bool,
    program: Program,
    book: commission_sync.RuleBook | None,
    effect: commission_sync.Effect | None,
) -> None:
    ids = [e.id for e in events]
    current: dict[str, dict[str, Credit]] = defaultdict(dict)
    currency_of = {e.id: e.currency for e in events}
    rows = session.execute(
        sa.select(
            AttributionRow.event_id,
            AttributionRow.partner_id,
            AttributionRow.amount,
            AttributionRow.weight,
        ).where(one_of(AttributionRow.event_id, "ids", pg)),
        {"ids": ids},
    )
    for event_id, partner_id, amount, weight in rows:
        _add_credit(current[event_id], partner_id, amount, weight)
    derived = attribute(session, events, rules)
    for event, new_rows in zip(events, derived, strict=True):
        replayed: dict[str, Credit] = {}
        for row in new_rows:
            _add_credit(replayed, row["partner_id"], row["amount"], row["weight"])
        before = current.get(event.id, {})
        if replayed != before:
            report.changed_events += 1
        for partner_id in set(before) | set(replayed):
            _add_diff(
                report,
                partner_id,
                currency_of[event.id],
                before.get(partner_id, NO_CREDIT)[0],
                replayed.get(partner_id, NO_CREDIT)[0],
            )
    if book is not None:
        # Every event of the chunk gets new rows: its commissions follow, flat rewards
        # included (written after the rows below; computed from the same rows either way).
        facts = [
            commission_sync.Facts(
                e.id, e.seq, e.type, e.customer_id, e.occurred_at, e.amount, e.currency
            )
            for e in events
        ]
        shares = commission_sync.shares_of_rows(row for new_rows in derived for row in new_rows)
        if report.dry_run:
            commission_sync.sync(
                session, program, facts, shares, book=book, dry_run=True, effect=effect
            )
    if report.dry_run:
        return
    lock_events(session, ids)  # chunk after chunk, in ingest order, as every deriver does
    session.execute(
        _ATTRIBUTIONS.delete().where(one_of(_ATTRIBUTIONS.c.event_id, "ids", pg)),
        {"ids": ids},
    )
    rows_ = [row for new_rows in derived for row in new_rows]
    if pg:
        _copy_rows(session, rows_)
    else:
        store(session, rows_)
    if book is not None:
        commission_sync.sync(session, program, facts, shares, book=book, effect=effect)


Credit = tuple[int, Fraction]
"""A partner's credit in one event: its amount and its exact weight."""
NO_CREDIT: Credit = (0, Fraction(0))


def _add_credit(credits: dict[str, Credit], partner_id: str, amount: int, weight: str) -> None:
    old_amount, old_weight = credits.get(partner_id, NO_CREDIT)
    credits[partner_id] = (old_amount + amount, old_weight + Fraction(weight))


def _add_diff(
    report: ReplayReport, partner_id: str, currency: str | None, current: int, replayed: int
) -> None:
    diff = report.partners.setdefault((partner_id, currency), PartnerDiff(partner_id, currency))
    diff.current += current
    diff.replayed += replayed


def _copy_rows(session: Session, rows: list[dict[str, Any]]) -> None:
    """``store`` on PostgreSQL with ``COPY``: the fastest way in for tens of thousands of rows."""
    if not rows:
        return
    columns = list(rows[0])
    json_at = [i for i, c in enumerate(columns) if isinstance(_ATTRIBUTIONS.c[c].type, sa.JSON)]
    dumped: dict[str, str] = {}  # the same few params over and over: dump each once
    cursor = session.connection().connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    names = ", ".join(f'"{c}"' for c in columns)
    with cursor.copy(f'COPY "{_ATTRIBUTIONS.name}" ({names}) FROM STDIN') as copy:
        for row in rows:
            values = list(row.values())
            for i in json_at:
                key = repr(values[i])
                text = dumped.get(key)
                if text is None:
                    text = dumped[key] = json.dumps(values[i])
                values[i] = text
            copy.write_row(values)


REPLAYED_SHARES = """SELECT r.event_id, r.partner_id, r.weight, count(*) AS k,
           sum(r.amount) AS amount
    FROM replay_rows r JOIN replay_rewrite w ON w.event_id = r.event_id
    GROUP BY r.event_id, r.partner_id, r.weight"""
"""Every partner's share of each rewritten event, from the set-based replay's new rows."""


def _commission_totals(
    session: Session, program_id: str, since: datetime | None
) -> dict[tuple[str, str], int]:
    """What the program's events from ``since`` owe in commissions, per partner and currency:
    live amounts plus adjustments."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    in_scope = [Commission.program_id == program_id]
    if since is not None:
        in_scope.append(
            Commission.event_id.in_(
                sa.select(Event.id).where(
                    Event.program_id == program_id, Event.occurred_at >= since
                )
            )
        )
    live = sa.case((Commission.status == "reversed", 0), else_=Commission.amount)
    for partner_id, currency, high, low in session.execute(
        sa.select(Commission.partner_id, Commission.currency, *money_sum(live))
        .where(*in_scope)
        .group_by(Commission.partner_id, Commission.currency)
    ):
        totals[(partner_id, currency)] += combine(high, low)
    for partner_id, currency, high, low in session.execute(
        sa.select(Adjustment.partner_id, Adjustment.currency, *money_sum(Adjustment.amount))
        .join(Commission, Commission.id == Adjustment.commission_id)
        .where(*in_scope)
        .group_by(Adjustment.partner_id, Adjustment.currency)
    ):
        totals[(partner_id, currency)] += combine(high, low)
    return totals


def _report_commissions(
    report: ReplayReport, current: dict[tuple[str, str], int], effect: commission_sync.Effect
) -> None:
    for key, total in current.items():
        report.commissions[key] = PartnerDiff(key[0], key[1], total, total)
    for key, (before, after) in effect.totals.items():
        diff = report.commissions.setdefault(key, PartnerDiff(key[0], key[1]))
        if key not in current:
            diff.current = diff.replayed = 0
        diff.replayed += after - before
    # As ``partners``: the rows the replay changes.
    for key in [k for k, d in report.commissions.items() if d.difference == 0]:
        del report.commissions[key]


def _sync_replayed(
    session: Session, program: Program, dry_run: bool, effect: commission_sync.Effect | None
) -> None:
    """The commissions of the events a set-based replay rewrites, from their new rows, before
    the replay writes (or locks) ``attributions``."""
    commission_sync.sync_where(
        session,
        program,
        "SELECT event_id FROM replay_rewrite",
        REPLAYED_SHARES,
        {},
        dry_run=dry_run,
        effect=effect,
    )
