"""What ingest reads of a program, kept by each API process between groups of single events.

Every group of single events (``group_commit.py``) needs the program, its attribution config
versions and whether it has commission rules or commissions. Read afresh, those were three
loads per group and a third of the group writer's time (docs/benchmarks.md, ingest). They rarely
change, and one small statement tells whether they did:

- a program's currency never changes, and every change of its attribution fields also records
  an attribution config version (``programs/service.py``, ``attribution/replay.py``); versions
  are only ever added. So while the number of versions is the same, the program and versions
  read earlier are what a fresh read would return;
- "has commission rules or commissions" only ever turns from false to true (neither is deleted).

So a group takes the programs' derivation locks, as every derivation does before it reads rules
(``attribution/late_changes.py``), then reads one row per program (the stamp: its number of
versions and the commission flag), and reads the program and its versions again only when the
stamp moved. A program field that ingest starts to read must change only with a new version, or
join the stamp.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.orm import Session

from openpartner.attribution.configs import AttributionConfig, Rules, program_configs
from openpartner.attribution.late_changes import hold_shared
from openpartner.commissions.models import Commission, CommissionRuleVersion
from openpartner.programs.models import Program

_STAMP = sa.select(
    sa.select(sa.func.count())
    .select_from(AttributionConfig)
    .where(AttributionConfig.program_id == Program.id)
    .scalar_subquery(),
    sa.or_(
        sa.exists().where(CommissionRuleVersion.program_id == Program.id),
        sa.exists().where(Commission.program_id == Program.id),
    ),
).where(Program.id == sa.bindparam("program_id"))


@dataclass(frozen=True, slots=True)
class _Entry:
    versions: int
    program: Program
    """Detached from any session, and only read."""
    configs: tuple[AttributionConfig, ...]


@dataclass(slots=True)
class Known:
    """The programs of one group, as :class:`ProgramRules` found them in its transaction."""

    rules: Rules
    programs: dict[str, Program] = field(default_factory=dict)
    """The programs that exist, by id."""
    with_commissions: set[str] = field(default_factory=set)


class ProgramRules:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def load(self, session: Session, program_ids: Iterable[str]) -> Known:
        ids = sorted(set(program_ids))
        hold_shared(session, ids)  # before reading any rule: see the module docstring
        known = Known(Rules(session))
        for program_id in ids:
            row = session.execute(_STAMP, {"program_id": program_id}).one_or_none()
            if row is None:
                continue
            versions, with_commissions = int(row[0]), bool(row[1])
            entry = self._entries.get(program_id)
            if entry is None or entry.versions != versions:
                entry = self._entries[program_id] = _read(session, program_id)
            known.rules.seed(entry.program, entry.configs)
            known.programs[program_id] = entry.program
            if with_commissions:
                known.with_commissions.add(program_id)
        return known


def _read(session: Session, program_id: str) -> _Entry:
    program = session.get_one(Program, program_id)
    configs = program_configs(session, program_id)
    # Out of the session: kept past its end, never expired by its commit, never written.
    session.expunge(program)
    for config in configs:
        session.expunge(config)
    # The versions read, not the stamp's count: one added in between reloads them next time.
    return _Entry(len(configs), program, tuple(configs))
