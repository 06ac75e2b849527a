"""From the engine's result to persisted rows, and from database touches to engine touches."""

from __future__ import annotations

from collections.abc import Iterable
from fractions import Fraction
from typing import Any, Protocol

from openpartner.attribution.engine import Attribution
from openpartner.attribution.inputs import Touch
from openpartner.core.ids import new_ids
from openpartner.core.money import split


class TouchLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def seq(self) -> int: ...
    @property
    def partner_id(self) -> str: ...
    @property
    def at(self) -> Any: ...
    @property
    def kind(self) -> str: ...
    @property
    def role(self) -> str | None: ...
    @property
    def flagged(self) -> bool: ...
    @property
    def partner_revoked(self) -> bool: ...


def engine_touches(records: Iterable[TouchLike]) -> list[Touch]:
    seen: set[str] = set()
    touches = []
    for r in records:
        if r.id in seen:  # a touch reached through two paths (customer and deal) counts once
            continue
        seen.add(r.id)
        touches.append(
            Touch(
                id=r.id,
                seq=r.seq,
                partner_id=r.partner_id,
                at=r.at,
                kind=r.kind,
                role=r.role,
                flagged=r.flagged,
                partner_revoked=r.partner_revoked,
            )
        )
    return touches


def fraction_text(value: Fraction) -> str:
    return f"{value.numerator}/{value.denominator}"


def rows_from(
    result: Attribution,
    *,
    event_id: str,
    program_id: str,
    currency: str | None,
    config_id: str | None,
) -> list[dict[str, Any]]:
    """One row per credited touch. A partner's amount is split over its touches by their
    weights (same split function, earlier touch first), so the rows sum exactly to the
    event's amount."""
    weighted = {w.touch.id: w for w in result.touches}
    position = {w.touch.id: i for i, w in enumerate(result.touches)}
    params = result.spec.params_for_storage()
    rows: list[dict[str, Any]] = []
    for credit in result.credits:
        touch_weights = {tid: weighted[tid].weight for tid in credit.touch_ids}
        if len(touch_weights) == 1:
            # One credited touch (every last_click credit): it carries the whole amount, as
            # ``split`` would give it.
            amounts = {credit.touch_ids[0]: credit.amount}
        elif sum(touch_weights.values()) > 0:
            amounts = split(credit.amount, touch_weights, {t: position[t] for t in touch_weights})
        else:
            amounts = {credit.touch_ids[0]: credit.amount}
        for n, tid in enumerate(credit.touch_ids):
            touch = weighted[tid].touch
            rows.append(
                {
                    "id": None,
                    "program_id": program_id,
                    "event_id": event_id,
                    "partner_id": credit.partner_id,
                    "touch_id": tid,
                    "touch_kind": touch.kind,
                    "weight": fraction_text(weighted[tid].weight),
                    "amount": amounts.get(tid, 0),
                    # the partner's whole amount, once: on its first row in the event
                    "credit": credit.amount if n == 0 else None,
                    "currency": currency,
                    "model": result.spec.name,
                    "params": params,
                    "config_version": config_id,
                    "engine_version": result.engine_version,
                }
            )
    for row, id_ in zip(rows, new_ids("att", len(rows)), strict=True):
        row["id"] = id_
    return rows
