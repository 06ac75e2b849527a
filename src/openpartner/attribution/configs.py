"""Versioned attribution configuration: model, parameters and window, effective from a time.

An event is attributed under the version in force at its time: the most recently *created*
version among those effective at or before the event. A program edit creates a version effective
now, so the past keeps its rules; a replay applied "since T" creates a version effective at T,
which then wins for every event from T on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, Session, mapped_column

from openpartner.attribution.models import ModelSpec, parse_model
from openpartner.core.ids import new_id_after
from openpartner.core.time import utc_now
from openpartner.db.base import Base, IdType, JSONType
from openpartner.deals.models import Deal
from openpartner.programs.models import Program

BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


class AttributionConfig(Base):
    __tablename__ = "attribution_configs"
    __table_args__ = (
        sa.Index(
            "ix_attribution_configs_program_id_effective_from", "program_id", "effective_from"
        ),
    )

    id: Mapped[str] = mapped_column(IdType, primary_key=True)
    """``cfg_…``; made by ``new_id_after`` the program's latest, so ids sort in the order
    versions were created, which breaks ties between versions."""
    program_id: Mapped[str] = mapped_column(sa.ForeignKey("programs.id"))
    effective_from: Mapped[datetime]
    model: Mapped[str] = mapped_column(sa.String(32))
    params: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    """Canonical parameters (``ModelSpec.params_for_storage()``)."""
    window_days: Mapped[int]
    reason: Mapped[str] = mapped_column(sa.String(64))
    """``created``, ``updated`` or ``replay``."""
    created_at: Mapped[datetime] = mapped_column(default=utc_now)

    @property
    def spec(self) -> ModelSpec:
        return parse_model(self.model, self.params)


def record_config(
    session: Session,
    *,
    program_id: str,
    model: str,
    params: dict[str, Any] | None,
    window_days: int,
    effective_from: datetime,
    reason: str,
) -> AttributionConfig:
    spec = parse_model(model, params or {})
    latest = session.scalar(
        sa.select(sa.func.max(AttributionConfig.id)).where(
            AttributionConfig.program_id == program_id
        )
    )
    config = AttributionConfig(
        # After the program's latest version even within one millisecond: the order of ids is
        # the order of versions (``in_force``), and ids of one millisecond are otherwise random.
        id=new_id_after("cfg", latest),
        program_id=program_id,
        effective_from=effective_from,
        model=spec.name,
        params=spec.params_for_storage(),
        window_days=window_days,
        reason=reason,
    )
    session.add(config)
    session.flush()
    return config


# Built once: constructing the select costs more than running it (ingest reads it for every
# group of events).
_PROGRAM_CONFIGS = (
    sa.select(AttributionConfig)
    .where(AttributionConfig.program_id == sa.bindparam("program_id"))
    .order_by(AttributionConfig.id)
)


def program_configs(session: Session, program_id: str) -> list[AttributionConfig]:
    return list(session.scalars(_PROGRAM_CONFIGS, {"program_id": program_id}))


def in_force(configs: Sequence[AttributionConfig], at: datetime) -> AttributionConfig | None:
    """The version in force at ``at`` among ``configs`` (ordered by id, i.e. creation)."""
    chosen = None
    for config in configs:
        if config.effective_from <= at:
            chosen = config  # later-created versions win
    return chosen


def config_for(session: Session, program_id: str, at: datetime) -> AttributionConfig | None:
    return session.scalar(
        sa.select(AttributionConfig)
        .where(AttributionConfig.program_id == program_id, AttributionConfig.effective_from <= at)
        .order_by(AttributionConfig.id.desc())
        .limit(1)
    )


class Rules:
    """Resolves the rules in force for many events with one query per program: the config
    version at the event's time, with a deal's own model taking precedence for its sale."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._configs: dict[str, list[AttributionConfig]] = {}
        self._programs: dict[str, Program] = {}
        self._deal_models: dict[str, str | None] = {}

    def seed(self, program: Program, configs: Sequence[AttributionConfig]) -> None:
        """Use ``program`` and its ``configs`` (all of them, by id) as already read."""
        self._programs[program.id] = program
        self._configs[program.id] = list(configs)

    def preload(self, program_id: str, extra: Sequence[AttributionConfig]) -> None:
        """Resolve as if ``extra`` versions (newest last) existed: a dry-run replay's."""
        self._configs[program_id] = program_configs(self.session, program_id) + list(extra)

    def program(self, program_id: str) -> Program:
        if program_id not in self._programs:
            self._programs[program_id] = self.session.get_one(Program, program_id)
        return self._programs[program_id]

    def load_deals(self, deal_ids: Iterable[str | None]) -> None:
        wanted = {d for d in deal_ids if d and d not in self._deal_models}
        if wanted:
            rows = self.session.execute(sa.select(Deal.id, Deal.model).where(Deal.id.in_(wanted)))
            self._deal_models.update({deal_id: model for deal_id, model in rows})

    def for_event(
        self, program_id: str, at: datetime, deal_id: str | None = None
    ) -> tuple[ModelSpec, int, AttributionConfig | None]:
        if program_id not in self._configs:
            self._configs[program_id] = program_configs(self.session, program_id)
        config = in_force(self._configs[program_id], at)
        program = self.program(program_id)
        model = config.model if config else program.attribution_model
        params = config.params if config else program.attribution_params
        window = config.window_days if config else program.attribution_window_days
        if deal_id:
            self.load_deals([deal_id])
            deal_model = self._deal_models.get(deal_id)
            if deal_model and deal_model != model:
                model, params = deal_model, {}
        return parse_model(model, params), window, config
