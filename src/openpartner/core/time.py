"""Aware UTC time, with one clock that tests can set.

Everything that needs "now" calls :func:`utc_now`. Tests freeze or move it with
``clock.freeze(...)`` / ``clock.advance(...)`` instead of patching modules.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    def __init__(self) -> None:
        self._frozen: datetime | None = None

    def now(self) -> datetime:
        return self._frozen if self._frozen is not None else datetime.now(UTC)

    def freeze(self, at: datetime) -> None:
        self._frozen = ensure_utc(at)

    def advance(self, delta: timedelta) -> None:
        self._frozen = self.now() + delta

    def unfreeze(self) -> None:
        self._frozen = None


clock = Clock()


def utc_now() -> datetime:
    return clock.now()


def ensure_utc(value: datetime) -> datetime:
    """Aware UTC datetime; naive values are refused rather than guessed."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: OpenPartner only handles aware UTC times")
    return value.astimezone(UTC)
